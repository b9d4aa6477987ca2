//! `convert-config`: the C++ server's INI file as TOML the server reads back the same.

use super::*;

/// The deployed kind of INI file (docs/contract.md §8), with a Redis password that only
/// survives a URL percent-encoded.
const DEPLOYED_INI: &str = "[StatusServer]
Port = 50052
Host = 0.0.0.0
[Mysql]
Host = 127.0.0.1
Port = 33060
User = root
Passwd = secret
Schema = userData
[Redis]
Host = 127.0.0.1
Port = 6379
Passwd = s3cr@t/#1
[chatservers]
Name = chatserver1, chatserver2
[chatserver1]
Name = chatserver1
Host = 127.0.0.1
Port = 8090
[chatserver2]
Name = chatserver2
Host = 127.0.0.1
Port = 8091
";

#[test]
fn convert_config_prints_toml_that_the_server_reads_as_the_ini_file() {
    let (_dir, path) = write_config_as("config.ini", DEPLOYED_INI);
    let path_arg = path.to_str().expect("a UTF-8 temporary path");
    let from_ini = status_server::config::ini::read_file(&path)
        .expect("the deployed file is valid")
        .settings;
    let parse = |toml: &str, url_override: Option<&str>| {
        Settings::parse(toml, Path::new("converted.toml"), url_override)
            .unwrap_or_else(|e| panic!("the output is a valid config ({e}):\n{toml}"))
    };

    // By default the password stays out of the output: the server then needs
    // STATUS_REDIS_URL, which gives back exactly the INI file's settings.
    let run = statusctl(&["convert-config", path_arg]);
    run.assert_code(0);
    assert!(
        !run.stdout.contains("s3cr"),
        "password in the output:\n{}",
        run.stdout
    );
    assert!(
        run.stdout
            .starts_with("# status-server config, converted by `statusctl convert-config`"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("INI file {path_arg}.")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("# Left out: [Mysql]"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("STATUS_REDIS_URL='redis://:PASSWORD@127.0.0.1:6379'")
    );
    assert_eq!(
        parse(&run.stdout, None).redis.url(),
        Some("redis://127.0.0.1:6379")
    );
    assert_eq!(parse(&run.stdout, from_ini.redis.url()), from_ini);
    assert!(
        run.stderr
            .starts_with("statusctl: note: [Redis] Passwd is not in the output")
            && run.stderr.lines().count() == 1,
        "{:?}",
        run.stderr
    );

    // --keep-password writes it into the URL: the output alone is the INI file's settings.
    let run = statusctl(&["convert-config", "--keep-password", path_arg]);
    run.assert_code(0);
    assert_eq!(run.stderr, "");
    assert!(
        run.stdout
            .contains("url = \"redis://:s3cr%40t%2F%231@127.0.0.1:6379\"")
    );
    assert_eq!(parse(&run.stdout, None), from_ini);
}

#[test]
fn convert_config_of_a_bad_file_exits_1_with_the_line_the_server_prints() {
    let bad = DEPLOYED_INI.replace("Port = 8091", "Port = 70000");
    let (_dir, path) = write_config_as("config.ini", &bad);
    let path_arg = path.to_str().expect("a UTF-8 temporary path");
    let run = statusctl(&["convert-config", path_arg]);
    run.assert_code(1);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.error_line(),
        format!(
            "statusctl: error: {path_arg}: line 23: [chatserver2] Port = 70000: port must be \
             in 1-65535"
        )
    );

    let run = statusctl(&[
        "convert-config",
        "/nonexistent/status-server-test/config.ini",
    ]);
    run.assert_code(1);
    assert!(
        run.error_line().starts_with(
            "statusctl: error: /nonexistent/status-server-test/config.ini: cannot read: "
        ),
        "{}",
        run.stderr
    );

    let run = statusctl(&["--json", "convert-config", path_arg]);
    run.assert_code(2);
    assert!(
        run.error_line().contains("--json does not apply"),
        "{}",
        run.stderr
    );
}
