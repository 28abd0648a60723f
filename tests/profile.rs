//! Step 3 (deployment profile) and the profile assignment of step 4, over HTTP against the
//! simulated tenant; plus the self-tests of the shared schema validator.

mod support;

use serde_json::json;
use support::schema;

#[test]
fn schema_validator_accepts_the_reference_create_body() {
    // Reference §3.2, verbatim.
    let body = json!({
      "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
      "displayName": "Autopilot - User driven - Entra join",
      "description": "Created by setup wizard",
      "language": "os-default",
      "deviceNameTemplate": "",
      "deviceType": "windowsPc",
      "enableWhiteGlove": false,
      "extractHardwareHash": false,
      "roleScopeTagIds": ["0"],
      "outOfBoxExperienceSettings": {
        "@odata.type": "microsoft.graph.outOfBoxExperienceSettings",
        "hidePrivacySettings": true,
        "hideEULA": true,
        "userType": "standard",
        "deviceUsageType": "singleUser",
        "skipKeyboardSelectionPage": false,
        "hideEscapeLink": true
      }
    });
    let errors = schema::validate("beta", "windowsAutopilotDeploymentProfile", &body);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn schema_validator_catches_misspelled_property_and_bad_enum() {
    let body = json!({
      "@odata.type": "#microsoft.graph.azureADWindowsAutopilotDeploymentProfile",
      "displayname": "x",
      "deviceType": "laptop",
      "outOfBoxExperienceSettings": { "hideEula": true, "userType": "superuser" }
    });
    let errors = schema::validate("beta", "windowsAutopilotDeploymentProfile", &body);
    let all = errors.join("\n");
    assert!(all.contains("\"displayname\" does not exist"), "{all}");
    assert!(all.contains("did you mean \"displayName\""), "{all}");
    assert!(
        all.contains(
            "\"laptop\" is not a member of enum microsoft.graph.windowsAutopilotDeviceType"
        ),
        "{all}"
    );
    assert!(all.contains("outOfBoxExperienceSettings.hideEula"), "{all}");
    assert!(all.contains("\"superuser\" is not a member"), "{all}");
    assert_eq!(errors.len(), 4, "{all}");
}

#[test]
fn schema_validator_checks_types_nullability_and_abstract_bases() {
    // The abstract base without a concrete @odata.type.
    let errors = schema::validate(
        "beta",
        "windowsAutopilotDeploymentProfile",
        &json!({"displayName": "x"}),
    );
    assert!(
        errors.iter().any(|e| e.contains("is abstract")),
        "{errors:?}"
    );
    // A type that is not derived from the declared one.
    let errors = schema::validate(
        "beta",
        "windowsAutopilotDeploymentProfile",
        &json!({"@odata.type": "#microsoft.graph.group"}),
    );
    assert!(
        errors.iter().any(|e| e
            .contains("not microsoft.graph.windowsAutopilotDeploymentProfile or a type derived")),
        "{errors:?}"
    );
    // Primitive types, null on a non-nullable boolean, array items, date-time format.
    let errors = schema::validate(
        "beta",
        "azureADWindowsAutopilotDeploymentProfile",
        &json!({
            "displayName": 5,
            "extractHardwareHash": null,
            "enableWhiteGlove": "false",
            "roleScopeTagIds": [0],
            "createdDateTime": "yesterday",
            "description": null,
        }),
    );
    let all = errors.join("\n");
    assert!(all.contains("displayName: expected a string"), "{all}");
    assert!(
        all.contains("extractHardwareHash: null is not allowed"),
        "{all}"
    );
    assert!(
        all.contains("enableWhiteGlove: expected true or false"),
        "{all}"
    );
    assert!(
        all.contains("roleScopeTagIds[0]: expected a string"),
        "{all}"
    );
    assert!(
        all.contains("createdDateTime: \"yesterday\" is not an ISO 8601"),
        "{all}"
    );
    assert_eq!(errors.len(), 5, "description is nullable: {all}");
    // Polymorphic nested value: the abstract target needs a concrete type; annotations pass.
    let errors = schema::validate(
        "beta",
        "windowsAutopilotDeploymentProfileAssignment",
        &json!({"target": {"groupId": "g"}, "@odata.context": "x"}),
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("target:") && e.contains("abstract")),
        "{errors:?}"
    );
    assert!(schema::validate(
        "beta",
        "windowsAutopilotDeploymentProfileAssignment",
        &json!({"@odata.type": "#microsoft.graph.windowsAutopilotDeploymentProfileAssignment",
                "target": {"@odata.type": "#microsoft.graph.exclusionGroupAssignmentTarget", "groupId": "g"}}),
    ).is_empty());
    // Open types accept dynamic properties; bind annotations are ignored.
    assert!(schema::validate(
        "v1.0",
        "group",
        &json!({"displayName": "g", "mailEnabled": false, "extension_abc_x": 1, "members@odata.bind": ["u"]}),
    ).is_empty());
    // An error body.
    assert!(
        schema::validate_error(
            &json!({"error": {"code": "c", "message": "m", "innerError": {"request-id": "r"}}})
        )
        .is_empty()
    );
    assert!(!schema::validate_error(&json!({"error": {"message": "m"}})).is_empty());
}
