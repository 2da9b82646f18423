//! Mail on its way: rendered and sealed when a request is handled, kept in the outbox until
//! it is sent.

/// A rendered mail, sealed, ready to be inserted into the outbox.
#[derive(Debug, Clone)]
pub struct Composed {
    /// Outbox row id.
    pub id: String,
    /// Tenant it is sent for.
    pub tenant_id: String,
    /// Template name.
    pub template: &'static str,
    /// Recipient address.
    pub recipient: String,
    /// The message (sender, subject, bodies) sealed with the master key.
    pub sealed: String,
    /// When it was composed.
    pub created_at: i64,
}
