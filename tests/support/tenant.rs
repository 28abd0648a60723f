//! Builds small tenants for the assignment and validation tests directly in the simulator's
//! state: Autopilot devices with (or without) their Entra objects, groups, profiles.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use autopilot_wizard::sim::autopilot::AutopilotDevice as SimApDevice;
use autopilot_wizard::sim::directory::{self, RuleProcessingStatus, SimGroup};
use autopilot_wizard::sim::profiles::{StoredAssignment, StoredOobe, StoredProfile, StoredTarget};
use autopilot_wizard::sim::{Seed, SimConfig, SimHandle, SimState};
use autopilot_wizard::steps::assignment::{GroupMembership, Target, WaitOptions};
use chrono::{TimeZone, Utc};

pub const SALES_RULE: &str = r#"(device.devicePhysicalIds -any (_ -eq "[OrderID]:SALES"))"#;

pub fn empty_config() -> SimConfig {
    SimConfig {
        seed: Seed::Empty,
        ..SimConfig::test()
    }
}

pub fn fast_wait() -> WaitOptions {
    WaitOptions {
        first_poll: Duration::from_millis(10),
        max_poll: Duration::from_millis(50),
        phase_timeout: Duration::from_secs(15),
    }
}

/// An Autopilot device, with its Entra object unless `with_entra` is false. Returns the
/// Autopilot id and the Entra `deviceId` (empty without an object).
pub fn add_device(
    state: &mut SimState,
    serial: &str,
    tag: &str,
    with_entra: bool,
) -> (String, String) {
    let id = uuid::Uuid::new_v4().to_string();
    let mut d = SimApDevice::new(id.clone(), serial.into());
    d.manufacturer = "Contoso".into();
    d.model = "Laptop 7".into();
    d.group_tag = tag.into();
    if with_entra {
        d.azure_ad_device_id =
            directory::register_autopilot_device_object(state, serial, &id, Some(tag), None);
    }
    let did = d.azure_ad_device_id.clone();
    state.autopilot.devices.push(d);
    (id, did)
}

pub fn add_group(
    state: &mut SimState,
    name: &str,
    rule: Option<&str>,
    members: Vec<String>,
) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    state.directory.groups.push(SimGroup {
        id: id.clone(),
        display_name: name.into(),
        description: None,
        mail_nickname: name.replace(' ', ""),
        mail_enabled: false,
        security_enabled: true,
        group_types: if rule.is_some() {
            vec!["DynamicMembership".into()]
        } else {
            vec![]
        },
        membership_rule: rule.map(|r| r.to_string()),
        membership_rule_processing_state: rule.map(|_| "On".to_string()),
        created_date_time: Utc::now(),
        members,
        processing_status: RuleProcessingStatus::default(),
        visible_after: Instant::now(),
    });
    id
}

pub fn add_profile(state: &mut SimState, name: &str, created_year: i32, groups: &[&str]) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let created = Utc
        .with_ymd_and_hms(created_year, 3, 1, 9, 0, 0)
        .single()
        .expect("date");
    state.profiles.profiles.push(StoredProfile {
        id: id.clone(),
        odata_type: autopilot_wizard::sim::profiles::TYPE_ENTRA.into(),
        display_name: Some(name.into()),
        description: None,
        locale: Some("os-default".into()),
        device_name_template: None,
        device_type: "windowsPc".into(),
        hardware_hash_extraction: false,
        preprovisioning: false,
        role_scope_tag_ids: vec!["0".into()],
        management_service_app_id: None,
        oobe: StoredOobe::default(),
        enrollment_status_screen: None,
        hybrid_skip_connectivity_check: None,
        created,
        modified: created,
    });
    for g in groups {
        state.profiles.assignments.push(StoredAssignment {
            id: format!("{id}_{g}"),
            profile_id: id.clone(),
            target: StoredTarget::Group(g.to_string()),
            filter_id: None,
            filter_type: "none".into(),
        });
    }
    id
}

pub fn target(group_id: &str, membership: GroupMembership, profile_id: &str, name: &str) -> Target {
    Target {
        group_id: group_id.into(),
        group_name: "Autopilot devices".into(),
        membership,
        profile_id: profile_id.into(),
        profile_name: name.into(),
    }
}

pub fn object_id_of(sim: &SimHandle, device_id: &str) -> String {
    sim.with_state(|s| {
        s.directory
            .device_by_device_id(device_id)
            .map(|d| d.id.clone())
            .expect("Entra object")
    })
}
