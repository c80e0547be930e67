//! `host-cli import` against a live host-http: an NDJSON fleet in bulk
//! operations over several connections, refusals named, a re-run that
//! converges, create mode that refuses what exists, and the imported
//! enrollments deciding devices.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod support;

use std::path::Path;

use host_cli::import::{ImportArgs, Mode, import};
use serde_json::Value;
use support::{Server, canonical, device, group, individual};

fn connection_string(server: &Server) -> String {
    let text = std::fs::read_to_string(server.data.join("config.json")).unwrap();
    let config: host_http::ServiceConfig = serde_json::from_str(&text).unwrap();
    let policy = &config.shared_access_policies[0];
    format!(
        "HostName=localhost:{};SharedAccessKeyName={};SharedAccessKey={}",
        server.addr.port(),
        policy.key_name,
        policy.primary_key
    )
}

fn args(server: &Server, file: &Path, mode: Mode) -> ImportArgs {
    ImportArgs {
        file: file.to_path_buf(),
        connection_string: connection_string(server),
        server: None,
        ca: server.ca(),
        mode,
        connections: 3,
        quiet: true,
    }
}

#[test]
fn a_fleet_imports_in_bulk_and_decides_devices() {
    let dir = tempfile::tempdir().unwrap();
    let pki = canonical();
    let server = Server::start(&dir.path().join("data"), None);

    // 2,100 individual enrollments (three bulk operations), device-1's
    // disabled, line A's group, and two entries the service refuses.
    let mut lines: Vec<Value> = vec![group("line-a", &pki.line_a.pem, true)];
    for i in 0..2100 {
        lines.push(individual(
            &format!("fleet-{i:05}"),
            &pki.devices[4].pem,
            true,
        ));
    }
    lines.push(individual("device-1", &pki.devices[0].pem, false));
    lines.push(individual("-not-an-id", &pki.devices[0].pem, true));
    lines.push(group("line-x", "not a certificate", true));
    let file = dir.path().join("fleet.ndjson");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&file, text).unwrap();

    let done = import(&args(&server, &file, Mode::Update)).unwrap();
    assert_eq!((done.individuals, done.groups), (2101, 1), "{done:?}");
    let refused: Vec<&str> = done.refused.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(refused.len(), 2, "{:?}", done.refused);
    assert!(refused.contains(&"individual '-not-an-id'"), "{refused:?}");
    assert!(refused.contains(&"group 'line-x'"), "{refused:?}");
    assert!(
        done.refused.iter().all(|(_, why)| why.contains("400")),
        "{:?}",
        done.refused
    );
    assert!(done.summary(&file).contains("2 refused"));

    // What was imported is stored and decides.
    assert_eq!(
        server.admin("GET", "/enrollments/fleet-02099", None).status,
        200
    );
    let (c1, k1) = device(&pki, 1);
    assert_eq!(
        server.device(&c1, &k1).register("device-1").body["status"],
        "disabled"
    );
    let (c2, k2) = device(&pki, 2);
    let r = server.device(&c2, &k2).register("device-2");
    assert_eq!(r.body["status"], "assigned", "{r:?}");
    assert_eq!(
        r.body["registrationState"]["x509"]["enrollmentGroupId"], "line-a",
        "{r:?}"
    );

    // Again: update mode converges (the same entries, the same refusals).
    let again = import(&args(&server, &file, Mode::Update)).unwrap();
    assert_eq!((again.individuals, again.groups), (2101, 1));
    assert_eq!(again.refused_count(), 2);
    // Create mode refuses what exists, each entry by name.
    let create = import(&args(&server, &file, Mode::Create)).unwrap();
    assert_eq!((create.individuals, create.groups), (0, 0));
    assert_eq!(create.refused_count(), 2104);
    assert!(
        create
            .refused
            .iter()
            .all(|(_, why)| why.starts_with("409") || why.starts_with("400")),
        "{:?}",
        create.refused
    );
    assert_eq!(create.refused.len(), 50, "the first 50 are listed");

    // A file that breaks off is an error naming the line; what came
    // before it was acknowledged and stays.
    let broken = dir.path().join("broken.ndjson");
    std::fs::write(
        &broken,
        format!(
            "{}\n{{\"registrationId\": \"late\"\n",
            individual("early-1", &pki.devices[4].pem, true)
        ),
    )
    .unwrap();
    let err = format!(
        "{:#}",
        import(&args(&server, &broken, Mode::Update)).unwrap_err()
    );
    assert!(err.contains("line 2"), "{err}");
    // A wrong key: one clear error before anything is sent.
    let mut wrong = args(&server, &file, Mode::Update);
    wrong.connection_string = wrong.connection_string.replace(
        "SharedAccessKey=",
        "SharedAccessKey=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    let err = format!("{:#}", import(&wrong).unwrap_err());
    assert!(
        err.contains("refused the connection string's credentials: 401"),
        "{err}"
    );
    server.stop();
}
