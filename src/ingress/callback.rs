//! The query string Tencent appends to the callback URL, the same for every command. The
//! bodies belong to the commands (`src/commands/`).

/// The query parameters Tencent appends to the callback URL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallbackQuery {
    pub sdk_app_id: Option<String>,
    pub callback_command: Option<String>,
    pub client_ip: Option<String>,
    pub opt_platform: Option<String>,
    pub sign: Option<String>,
    pub request_time: Option<String>,
}

impl CallbackQuery {
    /// Parses a raw query string. A parameter given twice with different values is kept as
    /// an ambiguous empty value so that the check on it fails instead of picking one.
    pub fn parse(query: &str) -> Self {
        let mut q = CallbackQuery::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match key.as_ref() {
                "SdkAppid" => &mut q.sdk_app_id,
                "CallbackCommand" => &mut q.callback_command,
                "ClientIP" => &mut q.client_ip,
                "OptPlatform" => &mut q.opt_platform,
                "Sign" => &mut q.sign,
                "RequestTime" => &mut q.request_time,
                _ => continue,
            };
            match slot {
                None => *slot = Some(value.into_owned()),
                Some(prev) if *prev != value => *prev = String::new(),
                Some(_) => {}
            }
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_read_with_tencents_exact_names() {
        let q = CallbackQuery::parse(
            "SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterGroupInfoChanged&contenttype=json\
             &ClientIP=10.0.0.1&OptPlatform=RESTAPI&Sign=ab&RequestTime=1669872112",
        );
        assert_eq!(q.sdk_app_id.as_deref(), Some("1400000000"));
        assert_eq!(
            q.callback_command.as_deref(),
            Some("Group.CallbackAfterGroupInfoChanged")
        );
        assert_eq!(q.client_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(q.opt_platform.as_deref(), Some("RESTAPI"));
        assert_eq!(q.sign.as_deref(), Some("ab"));
        assert_eq!(q.request_time.as_deref(), Some("1669872112"));
    }

    #[test]
    fn a_parameter_repeated_with_another_value_becomes_ambiguous() {
        let q = CallbackQuery::parse("SdkAppid=1&SdkAppid=2");
        assert_eq!(q.sdk_app_id.as_deref(), Some(""));
        let q = CallbackQuery::parse("SdkAppid=1&SdkAppid=1");
        assert_eq!(q.sdk_app_id.as_deref(), Some("1"));
    }
}
