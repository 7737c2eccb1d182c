//! The wire shapes of what the hook receivers read: only the fields used, every other
//! field ignored (Okta and Microsoft add fields without notice), no field required
//! beyond what makes a body a delivery at all, field order irrelevant.
//!
//! Okta Event Hooks ("Event hooks" in Okta's developer documentation): a delivery is
//! `{"data": {"events": [{"uuid": …, …}]}, …}`. Microsoft Graph change notifications
//! ("Receive change notifications through webhooks" in Microsoft Graph's documentation):
//! a delivery is `{"value": [{"subscriptionId", "clientState", "lifecycleEvent"?, …}]}`.

use serde::Deserialize;

/// An Okta Event Hook delivery.
#[derive(Debug, Deserialize)]
pub struct OktaDelivery {
    pub data: OktaData,
}

#[derive(Debug, Deserialize)]
pub struct OktaData {
    pub events: Vec<OktaEvent>,
}

/// One System Log event; only its `uuid` is read (for at-least-once duplicates).
#[derive(Debug, Deserialize)]
pub struct OktaEvent {
    #[serde(default, deserialize_with = "lenient_string")]
    pub uuid: Option<String>,
}

/// A Graph notification batch. A body without `value` has no items.
#[derive(Debug, Default, Deserialize)]
pub struct GraphBatch {
    #[serde(default)]
    pub value: Vec<GraphItem>,
}

/// One Graph notification item.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphItem {
    #[serde(default, deserialize_with = "lenient_string")]
    pub client_state: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub subscription_id: Option<String>,
    /// `missed`, `reauthorizationRequired`, `subscriptionRemoved`; absent on a change.
    #[serde(default, deserialize_with = "lenient_string")]
    pub lifecycle_event: Option<String>,
}

/// A string, or `None` for null or any other type (an item with a number where a string
/// belongs is read as lacking the field, not as a broken batch).
fn lenient_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::String(s) => Some(s),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_odd_types_are_tolerated() {
        let b: OktaDelivery = serde_json::from_str(
            r#"{"eventType":"x","data":{"extra":[1],"events":[{"published":"p","uuid":"a"},{"uuid":7},{}]}}"#,
        )
        .unwrap();
        let uuids: Vec<Option<String>> = b.data.events.into_iter().map(|e| e.uuid).collect();
        assert_eq!(uuids, vec![Some("a".into()), None, None]);
        let g: GraphBatch = serde_json::from_str(
            r#"{"validationTokens":["t"],"value":[{"resource":"groups/1","clientState":"s","subscriptionId":"sub","x":{}},{"lifecycleEvent":"missed","clientState":null}]}"#,
        )
        .unwrap();
        assert_eq!(g.value.len(), 2);
        assert_eq!(g.value[0].client_state.as_deref(), Some("s"));
        assert_eq!(g.value[1].lifecycle_event.as_deref(), Some("missed"));
        assert_eq!(g.value[1].client_state, None);
        let empty: GraphBatch = serde_json::from_str("{}").unwrap();
        assert!(empty.value.is_empty());
    }
}
