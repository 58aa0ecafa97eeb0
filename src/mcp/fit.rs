//! Every tool result stays under [`MAX_RESULT_BYTES`] in each representation (the
//! structured content and the text block, which is the same JSON): a model's context is
//! small, and a cut that says so beats a silent one. Lists are cut from their end first
//! (the diagnostics, what the crew dropped, the findings a fix left), then long strings
//! (the SQL, the notes); the result then carries `"truncated": true` and `"left_out"`: per
//! JSON pointer, how many items or characters were left out.

use serde_json::{Map, Value, json};

/// The most a tool result's JSON may take, in bytes.
pub const MAX_RESULT_BYTES: usize = 10_000;

/// The lists cut first, by JSON pointer, in this order.
const LISTS: &[&str] = &[
    "/diagnostics",
    "/validation/diagnostics",
    "/report/dropped",
    "/left",
    "/changes",
    "/tables",
    "/jobs",
];

/// `value` made to fit in [`MAX_RESULT_BYTES`] of compact JSON.
pub fn fit(mut value: Value) -> Value {
    if size(&value) <= MAX_RESULT_BYTES {
        return value;
    }
    let mut left_out = Map::new();
    // Room for the marks this adds.
    let room = MAX_RESULT_BYTES - 200;
    for pointer in LISTS {
        if size(&value) <= room {
            break;
        }
        let Some(len) = value
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(Vec::len)
        else {
            continue;
        };
        // The most items that fit, found by halving.
        let (mut low, mut high) = (0, len);
        while low < high {
            let mid = (low + high).div_ceil(2);
            if size(&with_items(&value, pointer, mid)) <= room {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        value = with_items(&value, pointer, low);
        if low < len {
            left_out.insert((*pointer).into(), json!(len - low));
        }
    }
    // Then the longest strings, a few times at most.
    for _ in 0..4 {
        let over = size(&value).saturating_sub(room);
        if over == 0 {
            break;
        }
        let Some((pointer, chars)) = longest_string(&value, String::new()) else {
            break;
        };
        let keep = chars.saturating_sub(over + 1);
        if let Some(Value::String(text)) = value.pointer_mut(&pointer) {
            let cut: String = text.chars().take(keep).collect();
            *text = format!("{cut}…");
        }
        let before = left_out.get(&pointer).and_then(Value::as_u64).unwrap_or(0);
        left_out.insert(pointer, json!(before as usize + chars - keep));
    }
    if size(&value) > room {
        // Nothing left to cut sensibly (a designed recipe of hundreds of features).
        value = json!({
            "detail": format!(
                "the answer does not fit in {MAX_RESULT_BYTES} bytes even cut; ask for less (fewer features, `max_features`)"
            ),
        });
    }
    if let Value::Object(fields) = &mut value {
        fields.insert("truncated".into(), Value::Bool(true));
        fields.insert("left_out".into(), Value::Object(left_out));
    }
    value
}

/// The JSON Schema of the marks [`fit`] may add, merged into each output schema.
pub fn mark_properties() -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert(
        "truncated".into(),
        json!({"type": "boolean", "description": "Present and true when the answer was cut to fit in 10 000 bytes."}),
    );
    properties.insert(
        "left_out".into(),
        json!({"type": "object", "additionalProperties": {"type": "integer"},
               "description": "Per JSON pointer, how many list items or characters were cut."}),
    );
    properties
}

fn size(value: &Value) -> usize {
    serde_json::to_string(value).map_or(usize::MAX, |text| text.len())
}

fn with_items(value: &Value, pointer: &str, keep: usize) -> Value {
    let mut copy = value.clone();
    if let Some(Value::Array(items)) = copy.pointer_mut(pointer) {
        items.truncate(keep);
    }
    copy
}

/// The JSON pointer and length in characters of the longest string in `value`.
fn longest_string(value: &Value, at: String) -> Option<(String, usize)> {
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    match value {
        Value::String(text) => Some((at, text.chars().count())),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| longest_string(v, format!("{at}/{i}")))
            .max_by_key(|(_, n)| *n),
        Value::Object(fields) => fields
            .iter()
            .filter_map(|(k, v)| longest_string(v, format!("{at}/{}", escape(k))))
            .max_by_key(|(_, n)| *n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_answer_is_unchanged() {
        let value = json!({"sql": "SELECT 1", "diagnostics": []});
        assert_eq!(fit(value.clone()), value);
    }

    #[test]
    fn long_lists_are_cut_from_the_end_and_say_so() {
        let diagnostics: Vec<Value> = (0..1500)
            .map(|i| json!({"code": "E021", "message": format!("unknown column `c{i}`")}))
            .collect();
        let fitted = fit(json!({"sql": null, "diagnostics": diagnostics}));
        assert!(size(&fitted) <= MAX_RESULT_BYTES);
        assert_eq!(fitted["truncated"], true);
        let kept = fitted["diagnostics"].as_array().unwrap().len();
        assert!(kept > 10, "{kept}");
        assert_eq!(fitted["left_out"]["/diagnostics"], 1500 - kept);
        assert_eq!(fitted["diagnostics"][0]["message"], "unknown column `c0`");
    }

    #[test]
    fn a_long_string_is_cut_when_lists_are_not_enough() {
        let fitted = fit(json!({"sql": "x".repeat(50_000), "diagnostics": []}));
        assert!(size(&fitted) <= MAX_RESULT_BYTES);
        assert!(fitted["sql"].as_str().unwrap().ends_with('…'));
        assert!(fitted["left_out"]["/sql"].as_u64().unwrap() > 40_000);
    }
}
