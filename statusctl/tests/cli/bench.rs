//! `bench`: its JSON report, and seeded Login tokens.

use super::*;

#[tokio::test]
async fn bench_get_chat_server_reports_json_with_no_errors() {
    let (_redis, server) = one_alive_server(free_port()).await;
    let run = ctl(
        &server,
        &[
            "--json",
            "bench",
            "--rpc",
            "get-chat-server",
            "--concurrency",
            "8",
            "--connections",
            "2",
            "--duration",
            "1",
        ],
    );
    run.assert_code(0);
    let report = run.json();
    let ok = report["ok"].as_u64().expect("ok is a count");
    assert!(ok > 0, "{report}");
    assert_eq!(report["requests"], ok);
    assert_eq!(report["grpc_errors_total"], 0);
    assert_eq!(report["business_errors"], 0);
    assert_eq!(report["connections"], 2);
    assert_eq!(report["in_flight"], 8);
    assert!(report["rps"].as_f64().expect("rps") > 0.0);
    let p50 = report["p50_us"].as_u64().expect("p50_us");
    let max = report["max_us"].as_u64().expect("max_us");
    assert!(0 < p50 && p50 <= max, "{report}");
    // No terminal here: no progress bar garbles stderr.
    assert_eq!(run.stderr, "");
}

#[tokio::test]
async fn bench_login_seeds_its_tokens_and_unseeded_uids_exit_1() {
    let (redis, server) = one_alive_server(free_port()).await;
    let run = ctl(
        &server,
        &[
            "--json",
            "bench",
            "--rpc",
            "login",
            "--concurrency",
            "4",
            "--duration",
            "1",
            "--uid-base",
            "5000",
            "--seed-redis",
            &redis.url(),
        ],
    );
    run.assert_code(0);
    let report = run.json();
    assert!(report["ok"].as_u64().expect("ok") > 0, "{report}");
    assert_eq!(report["business_errors"], 0);
    assert_eq!(report["grpc_errors_total"], 0);
    assert_eq!(report["seeded_tokens"], 10_000);
    assert_eq!(
        redis.stored_token(14_999).await.as_deref(),
        Some("bench-token-14999")
    );

    // Nothing stored for these uids: every call is a business error (1011), in text mode.
    let run = ctl(
        &server,
        &[
            "bench",
            "--rpc",
            "login",
            "--concurrency",
            "2",
            "--duration",
            "0.3",
            "--uid-base",
            "90000",
        ],
    );
    run.assert_code(1);
    let fields = run.fields();
    assert_eq!(fields["ok"], "0");
    assert!(fields["business errors"].contains("1011:"), "{fields:?}");
    assert!(fields["latency"].starts_with("p50 "), "{fields:?}");
    assert!(run.error_line().contains("business error"));
}
