//! `reload`: `statusadmin.v1.Admin/Reload`, which re-reads the config file exactly as SIGHUP
//! does. Exit 1 when the file did not validate (the running config is kept).

use serde::Serialize;
use status_server::admin_proto::ReloadReq;
use status_server::admin_proto::admin_client::AdminClient;

use crate::failure::Failure;
use crate::output;
use crate::target::Target;

#[derive(Serialize)]
struct ReloadOut {
    applied: bool,
    message: String,
    /// Keys that changed but keep their running values until a restart.
    restart_needed: Vec<String>,
}

pub async fn run(target: &Target, json: bool) -> Result<(), Failure> {
    let mut client = crate::client!(target, AdminClient, target.connect().await?);
    let rsp = client
        .reload(ReloadReq {})
        .await
        .map_err(|status| Failure::grpc("Reload", &status))?
        .into_inner();
    let out = ReloadOut {
        applied: rsp.applied,
        message: rsp.message,
        restart_needed: rsp.restart_needed,
    };
    if json {
        output::json(&out);
    } else {
        let restart = if out.restart_needed.is_empty() {
            "none".to_string()
        } else {
            out.restart_needed.join(", ")
        };
        output::emit(&output::fields(&[
            ("applied", out.applied.to_string()),
            ("message", out.message.clone()),
            ("restart_needed", restart),
        ]));
    }
    if out.applied {
        Ok(())
    } else {
        Err(Failure::Refused(format!(
            "reload not applied: {}",
            out.message
        )))
    }
}
