//! `revoke --uid N`: `statusadmin.v1.Admin/RevokeToken`, which deletes the user's login
//! token, so Login with it answers 1011. Exit 1 when no token was stored for the uid.

use serde::Serialize;
use status_server::admin_proto::RevokeTokenReq;
use status_server::admin_proto::admin_client::AdminClient;

use crate::failure::Failure;
use crate::output;
use crate::target::Target;

#[derive(Serialize)]
struct RevokeOut {
    uid: i32,
    /// Whether a token was stored (and is now deleted).
    revoked: bool,
}

pub async fn run(target: &Target, json: bool, uid: i32) -> Result<(), Failure> {
    let mut client = crate::client!(target, AdminClient, target.connect().await?);
    let rsp = client
        .revoke_token(RevokeTokenReq { uid })
        .await
        .map_err(|status| Failure::grpc("RevokeToken", &status))?
        .into_inner();
    let out = RevokeOut {
        uid,
        revoked: rsp.revoked,
    };
    if json {
        output::json(&out);
    } else {
        let revoked = if out.revoked {
            "yes"
        } else {
            "no (no token was stored)"
        };
        output::emit(&output::fields(&[
            ("uid", out.uid.to_string()),
            ("revoked", revoked.to_string()),
        ]));
    }
    if out.revoked {
        Ok(())
    } else {
        Err(Failure::Refused(format!(
            "no token was stored for uid {uid}"
        )))
    }
}
