//! The Mailchimp destination's configuration block.

use audex_core::{
    ConfigError, ExportSettings, ExportTarget, Exports, ListId, Secret, TargetConfig,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Mailchimp's documented limit: 10 simultaneous connections per user.
pub const MAILCHIMP_MAX_CONCURRENCY: usize = 10;

/// The destination field that carries the record key.
pub const EMAIL_FIELD: &str = "email";

/// Export segments to Mailchimp tags (static segments) of one audience.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
// serde cannot deny unknown fields next to `flatten`, so only the schema
// does: the loader's schema stage rejects a mistyped key before parsing.
#[schemars(title = "Mailchimp destination", deny_unknown_fields)]
pub struct MailchimpConfig {
    /// Always `mailchimp`.
    #[serde(rename = "type")]
    pub kind: MailchimpType,
    /// The API key, `<key>-<dc>` (Account > Extras > API keys). Use
    /// `${VAR}`. The data centre (`us6`) is the part after the last `-`.
    pub api_key: Secret,
    /// The API root. Default: `https://<dc>.api.mailchimp.com/3.0` from the
    /// key. Must be https, except for loopback hosts (the simulator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub base_url: Option<String>,
    /// The audience (list) id, from Audience > Settings > Audience name and
    /// defaults, e.g. `5d2a8e41c7`.
    #[schemars(length(min = 1))]
    pub audience_id: String,
    /// Create a tag named by `tag` when the audience has none of that name
    /// (default false: a missing tag fails `audex check` and the run).
    #[serde(default)]
    pub create_tag: bool,
    /// The tags are audex's alone: `--reconcile` may then remove contacts
    /// other tools tagged. Default false: it removes only contacts audex
    /// added.
    #[serde(default)]
    pub tag_owned: bool,
    /// The status a new contact gets (existing contacts keep theirs).
    #[serde(default)]
    pub status_if_new: StatusIfNew,
    /// Calls in flight at once.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(flatten)]
    pub export: ExportSettings,
    /// The default tag (`tag` or `tag_id`) and the exports, each to a tag.
    #[serde(flatten)]
    pub exports: Exports<MailchimpTarget>,
}

/// The `type` tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MailchimpType {
    Mailchimp,
}

/// The status a contact new to the audience is created with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusIfNew {
    /// The audience decides: `pending` when it has double opt-in enabled
    /// (Mailchimp then emails each new contact to confirm), `subscribed`
    /// otherwise.
    #[default]
    Auto,
    /// Subscribed at once, without a confirmation email.
    Subscribed,
    /// Pending: Mailchimp emails each new contact a confirmation request.
    Pending,
    /// Transactional: the contact gets no marketing email.
    Transactional,
}

/// Where a Mailchimp export goes: a tag (static segment), by name or by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MailchimpTarget {
    /// The tag's name. On the destination: the tag of every export that
    /// names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub tag: Option<String>,
    /// The tag's (static segment's) numeric id, instead of `tag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tag_id: Option<u64>,
}

/// A target as the destination resolves it from its [`ListId`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagRef {
    /// A tag by name, looked up (and created when allowed) once.
    Name(String),
    /// A static segment by id.
    Id(u64),
}

const NAME_PREFIX: &str = "tag:";
const ID_PREFIX: &str = "tag_id:";

impl TagRef {
    /// The state store's key of the target: `tag:VIP` or `tag_id:123`.
    pub fn list_id(&self) -> ListId {
        match self {
            TagRef::Name(n) => ListId(format!("{NAME_PREFIX}{n}")),
            TagRef::Id(id) => ListId(format!("{ID_PREFIX}{id}")),
        }
    }

    /// The target a [`ListId`] of [`TagRef::list_id`] names.
    pub fn parse(list: &ListId) -> Option<TagRef> {
        if let Some(id) = list.0.strip_prefix(ID_PREFIX) {
            return id.parse().ok().filter(|n| *n > 0).map(TagRef::Id);
        }
        list.0
            .strip_prefix(NAME_PREFIX)
            .filter(|n| !n.trim().is_empty())
            .map(|n| TagRef::Name(n.to_string()))
    }
}

impl std::fmt::Display for TagRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TagRef::Name(n) => write!(f, "tag {n:?}"),
            TagRef::Id(id) => write!(f, "tag id {id}"),
        }
    }
}

impl MailchimpTarget {
    /// The target this entry names by itself, if any (`tag` wins when both
    /// are set; `validate` refuses that).
    fn named(&self) -> Option<TagRef> {
        match (&self.tag, self.tag_id) {
            (Some(t), _) => Some(TagRef::Name(t.clone())),
            (None, Some(id)) => Some(TagRef::Id(id)),
            (None, None) => None,
        }
    }
}

impl TargetConfig for MailchimpTarget {
    fn resolve(&self, default: &Self) -> Option<ExportTarget> {
        let tag = self.named().or_else(|| default.named())?;
        let label = match &tag {
            TagRef::Name(n) => ("tag".to_string(), serde_json::Value::from(n.clone())),
            TagRef::Id(id) => ("tag_id".to_string(), serde_json::Value::from(*id)),
        };
        Some(ExportTarget::new(
            tag.list_id(),
            serde_json::Map::from_iter([label]),
            tag.to_string(),
        ))
    }

    fn missing() -> ConfigError {
        ConfigError::new("tag", "no tag to export to")
            .with_hint("set tag (a name) or tag_id on the export or on the destination")
    }
}

/// Limits shared by every export to this Mailchimp account in the process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Calls in flight at once (Mailchimp: 10 per user; more are refused
    /// with 429). Lower it to leave room for other integrations.
    #[serde(default = "default_concurrency")]
    #[schemars(range(min = 1, max = 10))]
    pub max_concurrency: usize,
}

fn default_concurrency() -> usize {
    MAILCHIMP_MAX_CONCURRENCY
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_concurrency: default_concurrency(),
        }
    }
}

fn check_target(prefix: &str, t: &MailchimpTarget, errors: &mut Vec<ConfigError>) {
    let path = |field: &str| {
        if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        }
    };
    if t.tag.is_some() && t.tag_id.is_some() {
        errors.push(
            ConfigError::new(path("tag_id"), "tag and tag_id are both set")
                .with_hint("name the tag one way: tag (its name) or tag_id"),
        );
    }
    if let Some(tag) = &t.tag {
        if tag.trim().is_empty() {
            errors.push(ConfigError::new(path("tag"), "must not be blank"));
        } else if tag.trim() != tag {
            errors.push(ConfigError::new(
                path("tag"),
                "must not start or end with spaces",
            ));
        } else if tag.chars().count() > 100 {
            errors.push(ConfigError::new(
                path("tag"),
                "must be at most 100 characters",
            ));
        }
    }
    if t.tag_id == Some(0) {
        errors.push(ConfigError::new(
            path("tag_id"),
            "must be a positive integer",
        ));
    }
}

impl MailchimpConfig {
    /// Pure checks beyond the schema, paths relative to this block. No
    /// message repeats the key.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errors = self.export.validate();
        errors.extend(self.exports.validate());
        if self.api_key.expose().trim().is_empty() {
            errors.push(ConfigError::new("api_key", "must not be empty"));
        } else if let Err((path, message)) =
            crate::account::resolve(self.api_key.expose(), self.base_url.as_deref())
        {
            let e = ConfigError::new(path, message);
            errors.push(if path == "api_key" {
                e.with_hint("copy the whole key from Account > Extras > API keys (it ends in e.g. -us6), or set base_url")
            } else {
                e
            });
        }
        let audience = self.audience_id.trim();
        if audience.is_empty() {
            errors.push(ConfigError::new("audience_id", "must not be empty"));
        } else if !audience.bytes().all(|b| b.is_ascii_alphanumeric()) {
            errors.push(
                ConfigError::new("audience_id", "must be letters and digits only").with_hint(
                    "copy the audience id from Audience > Settings > Audience name and defaults",
                ),
            );
        }
        if !self.export.mapping.contains_key(EMAIL_FIELD) {
            errors.push(
                ConfigError::new(
                    format!("mapping.{EMAIL_FIELD}"),
                    "the email must be mapped to a profile column: it identifies the contact",
                )
                .with_hint("add e.g. `email: email` under mapping"),
            );
        }
        check_target("", &self.exports.default, &mut errors);
        for (i, e) in self.exports.exports.iter().enumerate() {
            check_target(&format!("exports.{i}"), &e.target, &mut errors);
        }
        if !(1..=MAILCHIMP_MAX_CONCURRENCY).contains(&self.rate_limit.max_concurrency) {
            errors.push(ConfigError::new(
                "rate_limit.max_concurrency",
                "must be between 1 and 10 (Mailchimp allows 10 connections per user)",
            ));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: serde_json::Value) -> MailchimpConfig {
        let mut base = json!({
            "type": "mailchimp",
            "display_name": "Mailchimp",
            "api_key": "0123456789abcdef0123456789abcdef-us6",
            "audience_id": "a1b2c3d4e5",
            "data_privacy_consent": true,
            "export_user": "maria",
            "mapping": {"email": "email", "FNAME": "first_name"},
            "tag": "VIP",
            "exports": [{"segment": "high_value"}],
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if v.is_null() {
                    b.remove(k);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        serde_json::from_value(base).expect("parses")
    }

    fn paths(c: &MailchimpConfig) -> Vec<String> {
        c.check().into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn a_plain_config_is_valid_and_defaults_hold() {
        let c = config(json!({}));
        assert!(c.check().is_empty(), "{:?}", c.check());
        assert_eq!(c.status_if_new, StatusIfNew::Auto);
        assert!(!c.create_tag && !c.tag_owned);
        assert_eq!(c.rate_limit.max_concurrency, 10);
    }

    #[test]
    fn targets_are_labelled_and_keyed_stably() {
        let c = config(json!({"exports": [{"segment": "a"}, {"segment": "b", "tag_id": 123}]}));
        let specs = c.exports.specs(c.export.mode);
        assert_eq!(specs[0].list().0, "tag:VIP");
        assert_eq!(specs[0].target.label["tag"], "VIP");
        assert_eq!(specs[1].list().0, "tag_id:123");
        assert_eq!(specs[1].target.label["tag_id"], 123);
        assert_eq!(
            TagRef::parse(specs[0].list()),
            Some(TagRef::Name("VIP".into()))
        );
        assert_eq!(TagRef::parse(specs[1].list()), Some(TagRef::Id(123)));
        assert_eq!(TagRef::parse(&ListId("tag_id:0".into())), None);
        assert_eq!(TagRef::parse(&ListId("123".into())), None);
    }

    #[test]
    fn tag_and_tag_id_together_are_refused_where_written() {
        let c = config(json!({
            "tag_id": 5,
            "exports": [{"segment": "a", "tag": "X", "tag_id": 7}],
        }));
        assert_eq!(paths(&c), ["tag_id", "exports.0.tag_id"]);
    }

    #[test]
    fn plain_http_and_missing_pieces_are_config_errors() {
        let c = config(json!({"base_url": "http://us6.api.mailchimp.com/3.0"}));
        assert_eq!(paths(&c), ["base_url"]);
        let c = config(json!({"api_key": "0123456789abcdef"}));
        let errs = c.check();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "api_key");
        assert!(!errs[0].message.contains("0123456789abcdef"));
        // With a base URL, the key's data centre is not needed.
        let c =
            config(json!({"api_key": "0123456789abcdef", "base_url": "http://127.0.0.1:9/3.0"}));
        assert!(c.check().is_empty());
        let c = config(json!({"mapping": {"FNAME": "first_name"}, "tag": null}));
        assert_eq!(paths(&c), ["exports.0.tag", "mapping.email"]);
        let c = config(json!({"rate_limit": {"max_concurrency": 11}}));
        assert_eq!(paths(&c), ["rate_limit.max_concurrency"]);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = config(json!({}));
        let shown = format!("{c:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }
}
