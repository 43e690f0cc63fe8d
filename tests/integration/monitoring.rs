//! `status --check` (SPEC §10): exit 0 when nothing needs an operator, 1 with one
//! line per problem.

use crate::harness::*;

fn check(hub: &Hub) -> (Option<i32>, String) {
    let out = hub.run(&["status", "--check"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn status_check_is_quiet_on_a_new_hub_and_names_a_stale_authority_after_stale_after() {
    let mut hub = Hub::new();
    hub.process(0);
    let (code, said) = check(&hub);
    assert_eq!(code, Some(0), "{said}");
    // Two days later nobody has sent an extract: both authorities are stale (36 h).
    hub.now = "2026-11-24T10:00:00Z".into();
    let (code, said) = check(&hub);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("STALE authority LA204") && said.contains("STALE authority LA317"),
        "{said}"
    );
    // LA204's extract arrives: only LA317 is left.
    hub.drop(
        "X26LA204",
        "n.csv",
        &extract("FULL", "2026-11-24T02:00:00Z", &[child("C-1", 1)]),
    );
    hub.process(0);
    let (_, said) = check(&hub);
    assert!(!said.contains("LA204") && said.contains("LA317"), "{said}");
}

#[test]
fn status_check_names_a_quarantined_message() {
    // A FULL that would end 15 of 20 held records is quarantined (MASS_END).
    let hub = Hub::new();
    let rows = |n: u32| -> Vec<String> { (1..=n).map(|i| child(&format!("C-{i}"), i)).collect() };
    hub.drop(
        "X26LA204",
        "a.csv",
        &extract("FULL", "2026-11-21T01:00:00Z", &rows(20)),
    );
    hub.process(0);
    hub.drop(
        "X26LA204",
        "b.csv",
        &extract("FULL", "2026-11-22T01:00:00Z", &rows(5)),
    );
    hub.process(1);
    let (code, said) = check(&hub);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("QUARANTINED message") && said.contains("b.csv"),
        "{said}"
    );
}
