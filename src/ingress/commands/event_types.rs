//! The `type` of every event the relay writes, spelt once: each command of the registry
//! ([`super::REGISTRY`]) names its own here, and the fold (`crate::state::fold`) matches on
//! these constants rather than on string literals. Nothing else of the crate is imported, so
//! the fold stays pure.

/// `Group.CallbackAfterCreateGroup`.
pub const GROUP_CREATED: &str = "tim.group.created";
/// `Group.CallbackAfterGroupInfoChanged`.
pub const GROUP_INFO_CHANGED: &str = "tim.group.info_changed";
/// `Group.CallbackAfterNewMemberJoin`.
pub const MEMBER_JOINED: &str = "tim.group.member_joined";
/// `Group.CallbackAfterMemberExit`.
pub const MEMBER_EXITED: &str = "tim.group.member_exited";
/// `Group.CallbackAfterChangeGroupOwner`.
pub const OWNER_CHANGED: &str = "tim.group.owner_changed";
/// `Group.CallbackAfterMemberFieldChanged`.
pub const MEMBER_CHANGED: &str = "tim.group.member_changed";
/// `Group.CallbackAfterGroupAttrChanged`.
pub const GROUP_ATTR_CHANGED: &str = "tim.group.attr_changed";
/// `Group.CallbackAfterGroupFull`.
pub const GROUP_FULL: &str = "tim.group.full";
/// `Group.CallbackAfterGroupDestroyed`.
pub const GROUP_DESTROYED: &str = "tim.group.destroyed";
/// `Group.CallbackAfterCreateTopic`.
pub const TOPIC_CREATED: &str = "tim.group.topic_created";
/// `Group.CallbackAfterTopicInfoChanged`.
pub const TOPIC_INFO_CHANGED: &str = "tim.group.topic_info_changed";
/// `Group.CallbackAfterTopicDestroyed`.
pub const TOPIC_DESTROYED: &str = "tim.group.topic_destroyed";
/// `Group.CallbackOnMemberStateChange`.
pub const MEMBER_STATE_CHANGED: &str = "tim.group.member_state_changed";
/// `Group.CallbackAfterSendMsg`.
pub const MESSAGE_SENT: &str = "tim.group.message_sent";
/// `Group.CallbackAfterRecallMsg`.
pub const MESSAGE_RECALLED: &str = "tim.group.message_recalled";
/// `Group.CallbackAfterReadReceipt`.
pub const READ_RECEIPT: &str = "tim.group.read_receipt";
/// `Group.CallbackAfterGroupMsgExtension`.
pub const MESSAGE_EXTENSION_CHANGED: &str = "tim.group.message_extension_changed";
/// `Group.CallbackSendMsgException`.
pub const MESSAGE_SEND_FAILED: &str = "tim.group.message_send_failed";
/// Not a callback (so in no command of the registry): the whole group as Tencent's REST API
/// returned it, published by `tim-relay reconcile` (`docs/reconcile.md`).
pub const GROUP_SNAPSHOT: &str = "tim.group.snapshot";
/// Every other after/notify callback, and each event of a push batch, verbatim.
pub const WEBHOOK: &str = "tim.webhook";
