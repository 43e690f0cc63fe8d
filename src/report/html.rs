//! `report summary --html FILE`: one self-contained page — inline CSS and SVG, no
//! script, no external asset — with the summary table, a national chart of files per
//! day for the last 30 days (stacked by authority), and per authority a small chart
//! of records received per day.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::Summary;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

const PALETTE: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#393b79", "#637939",
];

fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A stacked bar chart: one bar per day, one segment per authority.
fn national_chart(s: &Summary, authorities: &[String]) -> String {
    let (w, h, left, bottom) = (900.0, 260.0, 50.0, 40.0);
    let days = s.daily.len().max(1) as f64;
    let max = s
        .daily
        .iter()
        .map(|d| d.by_authority.iter().map(|(_, f, _)| *f).sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bar = (w - left - 10.0) / days;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="Files received per day, last 30 days">"#
    );
    svg.push_str(&format!(
        r##"<line x1="{left}" y1="{y}" x2="{x2}" y2="{y}" stroke="#333"/>"##,
        y = h - bottom,
        x2 = w - 10.0
    ));
    svg.push_str(&format!(
        r##"<text x="4" y="14" font-size="11" fill="#333">files (max {})</text>"##,
        max as u64
    ));
    for (i, d) in s.daily.iter().enumerate() {
        let x = left + i as f64 * bar;
        let mut y = h - bottom;
        for (code, files, records) in &d.by_authority {
            let seg = *files as f64 / max * (h - bottom - 24.0);
            y -= seg;
            let c = colour(authorities.iter().position(|a| a == code).unwrap_or(0));
            svg.push_str(&format!(
                r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{seg:.1}" fill="{c}"><title>{} {}: {files} files, {records} records</title></rect>"#,
                x + 1.0,
                (bar - 2.0).max(1.0),
                esc(&d.day),
                esc(code)
            ));
        }
        if i % 5 == 0 || i + 1 == s.daily.len() {
            svg.push_str(&format!(
                r##"<text x="{:.1}" y="{:.1}" font-size="10" fill="#333">{}</text>"##,
                x,
                h - bottom + 14.0,
                esc(&d.day[5..])
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A small bar chart of one authority's records per day.
fn sparkline(values: &[u64]) -> String {
    let (w, h) = (240.0, 36.0);
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bar = w / values.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#
    );
    for (i, v) in values.iter().enumerate() {
        let bh = (*v as f64 / max * (h - 2.0)).max(if *v > 0 { 1.0 } else { 0.0 });
        svg.push_str(&format!(r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#1f77b4"><title>{v}</title></rect>"##, i as f64 * bar, h - bh, (bar - 1.0).max(1.0)));
    }
    svg.push_str("</svg>");
    svg
}

/// Writes the page.
pub(crate) fn write(s: &Summary, out: &mut dyn Write) -> io::Result<()> {
    let authorities: Vec<String> = s.authorities.iter().map(|a| a.authority.clone()).collect();
    writeln!(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>cpis-hub summary {}</title>", esc(&s.as_of))?;
    writeln!(
        out,
        "<style>body{{font-family:system-ui,Arial,sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:12px 0}}\
         th,td{{border:1px solid #ccc;padding:4px 8px;font-size:13px}}th{{background:#f2f2f2;text-align:left}}td.n{{text-align:right}}\
         tr.total td{{font-weight:bold;background:#fafafa}}.stale{{color:#b00;font-weight:bold}}.legend span{{display:inline-block;margin-right:12px;font-size:12px}}\
         .legend i{{display:inline-block;width:10px;height:10px;margin-right:4px}}</style>\n</head>\n<body>"
    )?;
    writeln!(out, "<h1>cpis-hub national summary</h1>\n<p>As of {} — 7-day columns cover the last 7 days (Europe/London).</p>", esc(&s.as_of))?;
    writeln!(out, "<table>\n<tr><th>Authority</th><th>Name</th><th>CPP</th><th>LAC</th><th>UCPP</th><th>Ended</th><th>Last FULL</th><th>Last DELTA</th><th>Stale</th><th>Rejected files</th><th>Quarantined files</th><th>Notifications</th><th>Rejected lines by code</th></tr>")?;
    for a in s.authorities.iter().chain(std::iter::once(&s.national)) {
        let total = a.authority == "ALL";
        let codes = if a.lines_rejected_7d.is_empty() {
            "-".to_string()
        } else {
            a.lines_rejected_7d
                .iter()
                .map(|(c, n)| format!("{} {n}", esc(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let stale = if total {
            String::new()
        } else if a.stale {
            "<span class=\"stale\">STALE</span>".into()
        } else {
            "ok".into()
        };
        writeln!(
            out,
            "<tr{}><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{stale}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{codes}</td></tr>",
            if total { " class=\"total\"" } else { "" },
            esc(&a.authority),
            esc(&a.name),
            a.open_cpp,
            a.open_lac,
            a.open_ucpp,
            a.ended,
            esc(a.last_full.as_deref().unwrap_or(if total { "" } else { "never" })),
            esc(a.last_delta.as_deref().unwrap_or(if total { "" } else { "never" })),
            a.files_rejected_7d,
            a.files_quarantined_7d,
            a.notifications_7d,
        )?;
    }
    writeln!(out, "</table>")?;
    writeln!(
        out,
        "<h2>Files received per day, last 30 days</h2>\n{}",
        national_chart(s, &authorities)
    )?;
    write!(out, "<p class=\"legend\">")?;
    for (i, a) in authorities.iter().enumerate() {
        write!(
            out,
            "<span><i style=\"background:{}\"></i>{}</span>",
            colour(i),
            esc(a)
        )?;
    }
    writeln!(out, "</p>")?;
    writeln!(out, "<h2>Records received per day, by authority (last 30 days)</h2>\n<table>\n<tr><th>Authority</th><th>Records per day</th><th>Files</th><th>Records</th></tr>")?;
    let mut per: BTreeMap<&str, Vec<(u64, u64)>> = authorities
        .iter()
        .map(|a| (a.as_str(), vec![(0, 0); s.daily.len()]))
        .collect();
    for (i, d) in s.daily.iter().enumerate() {
        for (code, files, records) in &d.by_authority {
            if let Some(v) = per.get_mut(code.as_str()) {
                v[i] = (*files, *records);
            }
        }
    }
    for a in &authorities {
        let v = &per[a.as_str()];
        let records: Vec<u64> = v.iter().map(|(_, r)| *r).collect();
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(a),
            sparkline(&records),
            v.iter().map(|(f, _)| f).sum::<u64>(),
            records.iter().sum::<u64>()
        )?;
    }
    writeln!(
        out,
        "</table>\n<p>Generated by cpis-hub. No personal data: counts only.</p>\n</body>\n</html>"
    )
}
