//! `drain NAME` and `undrain NAME`: `statusadmin.v1.Admin/SetDraining`, which stops (or
//! resumes) placing new users on one chat server at run time. The reply says who drains
//! it now; an `undrain` that leaves the config's drain in place exits 1.

use serde::Serialize;
use status_server::admin_proto::SetDrainingReq;
use status_server::admin_proto::admin_client::AdminClient;

use crate::failure::Failure;
use crate::output;
use crate::target::Target;

/// The SetDraining reply, with the server it is about.
#[derive(Serialize)]
struct DrainOut {
    name: String,
    draining: bool,
    drain_from_config: bool,
    drain_from_admin: bool,
}

/// `yes (config)`, `yes (admin)`, `yes (config, admin)` or `no`.
fn state(out: &DrainOut) -> String {
    let sources: Vec<&str> = [
        (out.drain_from_config, "config"),
        (out.drain_from_admin, "admin"),
    ]
    .into_iter()
    .filter_map(|(set, source)| set.then_some(source))
    .collect();
    if sources.is_empty() {
        "no".to_string()
    } else {
        format!("yes ({})", sources.join(", "))
    }
}

pub async fn run(target: &Target, json: bool, name: String, draining: bool) -> Result<(), Failure> {
    let mut client = crate::client!(target, AdminClient, target.connect().await?);
    let rsp = client
        .set_draining(SetDrainingReq {
            name: name.clone(),
            draining,
        })
        .await
        .map_err(|status| Failure::grpc("SetDraining", &status))?
        .into_inner();
    let out = DrainOut {
        name,
        draining: rsp.draining,
        drain_from_config: rsp.drain_from_config,
        drain_from_admin: rsp.drain_from_admin,
    };
    if json {
        output::json(&out);
    } else {
        output::emit(&output::fields(&[
            ("name", out.name.clone()),
            ("draining", state(&out)),
        ]));
    }
    if !draining && out.draining {
        return Err(Failure::Refused(format!(
            "{} still drains: its config says draining = true (edit it and reload)",
            out.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_names_who_drains() {
        let out = |config, admin| DrainOut {
            name: "c".into(),
            draining: config || admin,
            drain_from_config: config,
            drain_from_admin: admin,
        };
        assert_eq!(state(&out(false, false)), "no");
        assert_eq!(state(&out(true, false)), "yes (config)");
        assert_eq!(state(&out(false, true)), "yes (admin)");
        assert_eq!(state(&out(true, true)), "yes (config, admin)");
    }
}
