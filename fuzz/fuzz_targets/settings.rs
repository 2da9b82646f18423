//! Tenant settings and mail templates: `updateSettings`'s whole check
//! (`apply_settings_patch`: merge the patch into the current settings, read them back, and
//! validate every value, templates compiled) never panics on any JSON, and what it accepts
//! passes again when written back whole (so stored settings always load).

#![no_main]

use auth_api::domain::TenantSettings;
use auth_api::service::apply_settings_patch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(patch) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let current = TenantSettings::default();
    if let Ok(settings) = apply_settings_patch(&current, patch, 900) {
        let whole = serde_json::to_value(&settings).expect("settings serialise");
        let again = apply_settings_patch(&TenantSettings::default(), whole, 900);
        assert!(again.is_ok(), "accepted settings refused when written back: {again:?}");
    }
});
