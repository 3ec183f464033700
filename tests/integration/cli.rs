//! The command line as scripts written for gh-ost use it, through the real binary.

use crate::harness::{
    self, primary_sql, run_wraith, run_wraith_with_input, servers, stderr, tables,
};

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn help_lists_gh_osts_flags_and_version_prints_the_version() {
    let out = run_wraith(&strings(&["--help"])).await;
    assert!(out.status.success());
    let help = text(&out);
    for flag in [
        "--max-lag-millis",
        "--postpone-cut-over-flag-file",
        "--throttle-control-replicas",
        "--cut-over-lock-timeout-seconds",
    ] {
        assert!(help.contains(flag), "--help does not list {flag}");
    }
    let out = run_wraith(&strings(&["-version"])).await;
    assert!(out.status.success());
    assert!(
        text(&out).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn completions_and_the_manual_page_come_from_the_same_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_wraith(&strings(&["completions", shell])).await;
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("chunk-size"), "{shell}: {script}");
        assert!(script.contains("postpone-cut-over-flag-file"), "{shell}");
    }
    let out = run_wraith(&strings(&["completions", "tcsh"])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("possible values"), "{}", stderr(&out));
    let out = run_wraith(&strings(&["man"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH wraith 1"), "{page}");
    assert!(page.contains("max\\-lag\\-millis"), "{page}");
}

#[tokio::test]
async fn check_flag_exits_zero_when_the_flags_parse_and_non_zero_when_not() {
    let out = run_wraith(&strings(&[
        "--check-flag",
        "-chunk-size",
        "500",
        "--execute=false",
    ]))
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run_wraith(&strings(&["--check-flag", "--chunk-sizes=500"])).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("--chunk-sizes"));
}

#[tokio::test]
async fn ask_pass_reads_the_password_from_standard_input() {
    let schema = harness::fresh_schema("ask_pass").await;
    primary_sql(&schema, &["CREATE TABLE t (id INT PRIMARY KEY)"]).await;
    let mut args = servers().replica.flags();
    args.extend([
        format!("--database={schema}"),
        "--table=t".into(),
        "--alter=ADD COLUMN c INT".into(),
        "--ask-pass".into(),
    ]);
    args.push(harness::unique_server_id_flag());
    // The test servers' root has no password: a wrong one typed at the prompt is refused ...
    let out = run_wraith_with_input(&args, "typed-wrong\n").await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("access denied"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("typed-wrong"),
        "the password was echoed"
    );
    // ... and the right one (empty) is accepted.
    let out = run_wraith_with_input(&args, "\n").await;
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn a_conf_file_supplies_the_credentials() {
    let schema = harness::fresh_schema("conf_file").await;
    primary_sql(&schema, &["CREATE TABLE t (id INT PRIMARY KEY)"]).await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ghost.conf");
    let replica = &servers().replica;
    std::fs::write(&conf, "[client]\nuser=nobody-such\npassword=wrong\n").unwrap();
    let base = vec![
        format!("--host={}", replica.host),
        format!("--port={}", replica.port),
        format!("--database={schema}"),
        "--table=t".into(),
        "--alter=ADD COLUMN c INT".into(),
        format!("--conf={}", conf.display()),
        harness::unique_server_id_flag(),
    ];
    let out = run_wraith(&base).await;
    assert!(
        stderr(&out).contains("access denied for user 'nobody-such'"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        &conf,
        format!(
            "[client]\nuser={}\npassword={}\n",
            replica.user, replica.password
        ),
    )
    .unwrap();
    let out = run_wraith(&base).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn assume_master_host_decides_which_server_is_written() {
    let schema = harness::fresh_schema("assume_master").await;
    primary_sql(
        &schema,
        &[
            "CREATE TABLE t (id INT PRIMARY KEY)",
            "INSERT INTO t VALUES (1), (2)",
        ],
    )
    .await;
    let s = servers();
    let args = |master: String| {
        let mut a = s.replica.flags();
        a.extend([
            format!("--database={schema}"),
            "--table=t".into(),
            "--alter=ADD COLUMN c INT".into(),
            format!("--assume-master-host={master}"),
            "--execute".into(),
            harness::unique_server_id_flag(),
        ]);
        a
    };
    // Named elsewhere than the replica's real primary, it is the server wraith connects to:
    // here a port where nothing listens, so the run fails naming it and changes nothing.
    let nowhere = harness::ClosedPort::new();
    let out = run_wraith(&args(format!("127.0.0.1:{}", nowhere.port))).await;
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}", nowhere.port)),
        "the error does not name the assumed primary:\n{err}"
    );
    assert_eq!(tables(&s.primary, &schema).await, vec!["t"]);
    // Named as the real primary, the migration runs there.
    let out = run_wraith(&args(format!("{}:{}", s.primary.host, s.primary.port))).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(tables(&s.primary, &schema).await, vec!["_t_del", "t"]);
}
