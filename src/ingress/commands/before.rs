//! Before-callbacks (`Group.CallbackBefore*`, `C2C.CallbackBeforeSendMsg`, `Sns.CallbackPrev*`,
//! the OfficialAccount before-callbacks): Tencent waits for allow or deny, so nothing is
//! published. The body is still checked like any other before it is answered or forwarded
//! to the decision service (`src/decision.rs`).

use crate::ingress::body::{BodyError, BodyLimits};

/// A before-callback and the field that must name its subject, where Tencent documents one.
pub struct Before {
    pub name: &'static str,
    required: Option<&'static str>,
}

const fn before(name: &'static str, required: Option<&'static str>) -> Before {
    Before { name, required }
}

const KNOWN: &[Before] = &[
    // No GroupId: the group does not exist yet.
    before("Group.CallbackBeforeCreateGroup", None),
    before("Group.CallbackBeforeApplyJoinGroup", Some("GroupId")),
    before("Group.CallbackBeforeInviteJoinGroup", Some("GroupId")),
    before("Group.CallbackBeforeSendMsg", Some("GroupId")),
    // Tencent's sample has no GroupId (unconfirmed), so none is required.
    before("Group.CallbackBeforeCreateTopic", None),
    before("C2C.CallbackBeforeSendMsg", Some("From_Account")),
    before("Sns.CallbackPrevFriendAdd", None),
    before("Sns.CallbackPrevFriendResponse", None),
    before("OfficialAccount.CallbackBeforeCreateOfficialAccount", None),
    before("OfficialAccount.CallbackBeforeAddSubscriber", None),
    before("OfficialAccount.CallbackBeforeSendMsg", None),
];

/// A before-callback the relay does not know by name (`*.CallbackBefore*`, `*.CallbackPrev*`).
static UNKNOWN: Before = before("", None);

/// The before-callback of that name, known or recognised by its name.
pub fn find(name: &str) -> Option<&'static Before> {
    KNOWN.iter().find(|b| b.name == name).or_else(|| {
        let (_, rest) = name.split_once('.')?;
        (rest.starts_with("CallbackBefore") || rest.starts_with("CallbackPrev")).then_some(&UNKNOWN)
    })
}

impl Before {
    /// Checks the body: a JSON object, its `CallbackCommand` the query's, bounded strings, and
    /// the subject field present where Tencent documents one.
    pub fn check(&self, command: &str, raw: &[u8], limits: BodyLimits) -> Result<(), BodyError> {
        let mut body = super::body_for(command, raw, limits)?;
        if let Some(field) = self.required {
            body.required(field)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_callbacks_are_found_by_name_and_by_shape() {
        assert_eq!(
            find("Group.CallbackBeforeSendMsg").unwrap().name,
            "Group.CallbackBeforeSendMsg"
        );
        assert!(find("Sns.CallbackPrevSomethingNew").is_some());
        assert!(find("Group.CallbackAfterSendMsg").is_none());
        let send = find("Group.CallbackBeforeSendMsg").unwrap();
        let limits = BodyLimits::default();
        assert_eq!(
            send.check("Group.CallbackBeforeSendMsg", br#"{"From_Account":"a"}"#, limits),
            Err(BodyError::Missing("GroupId"))
        );
        assert!(send
            .check(
                "Group.CallbackBeforeSendMsg",
                br#"{"GroupId":"g","MsgBody":[]}"#,
                limits
            )
            .is_ok());
    }
}
