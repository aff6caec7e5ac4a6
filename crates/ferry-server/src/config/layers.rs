//! Layered loading with [figment]: the TOML file, `FERRY_…` environment variables and the
//! command-line flags are each a [`Layer`] (a figment [`Provider`]), merged in that order over the
//! serde defaults and extracted into one [`Config`]; [`Loaded`] keeps where every value came from,
//! for error messages and `ferry config show --sources`.
//!
//! Environment names: `FERRY_`, then the setting's path in upper case with `__` between levels
//! (`FERRY_LIMITS__MAX_FILE_SIZE`, `FERRY_S3__BUCKET`); a top-level setting needs no `__`
//! (`FERRY_LINK_TTL_SECS`). A list by index (`FERRY_LINK_KEYS__0__ID`, `…__0__SECRET`) or whole,
//! as a TOML array (`FERRY_LIMITS__ALLOWED_TYPES=["image/*", "application/pdf"]`). A secret from
//! a file: `…__FILE=/path` (the `{ file = "…" }` form). Deployments by a label of your choice:
//! `FERRY_DEPLOYMENTS__<LABEL>__ID=<deployment id>` (any id, `-` and upper case included) and
//! `FERRY_DEPLOYMENTS__<LABEL>__<SETTING>=…`; without `__ID` the label in lower case is the id.
//! Values are text, read as numbers or booleans where the setting is one; the flags' own
//! variables (`FERRY_S3_BUCKET`, see `ferry serve --help`) are read with the flags.

use super::{Config, ConfigError, elide_quoted, invalid};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

/// The prefix of ferry's variables.
pub const ENV_PREFIX: &str = "FERRY_";

/// One layer of settings: values by path, each with a label saying where it came from (a
/// variable's or a flag's name). Its values may hold secrets: it never prints them.
#[derive(Clone)]
pub struct Layer {
    name: String,
    dict: Dict,
    labels: BTreeMap<Vec<String>, String>,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layer")
            .field("name", &self.name)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl Layer {
    /// An empty layer; `name` says where its values come from when no label is more precise.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), dict: Dict::new(), labels: BTreeMap::new() }
    }

    /// The settings of a TOML file.
    ///
    /// # Errors
    /// When the file cannot be read or is not TOML (the error names the line, never its text).
    pub fn file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid("config", format!("cannot read {}: {}", path.display(), e.kind())))?;
        let dict: Dict = toml::from_str(&text).map_err(|e| super::toml_error(&text, &e))?;
        Ok(Self { dict, ..Self::new(format!("file {}", path.display())) })
    }

    /// The settings among `vars` (all of the process's variables, say): those named `FERRY_…`
    /// as the module documentation says, except `reserved` ones (the flags' own variables).
    /// Single-level names that are not top-level settings (`FERRY_TEST_…`) are not settings.
    ///
    /// # Errors
    /// A malformed name (`FERRY_S3____BUCKET`, a deployment without a setting) or two variables
    /// that disagree on a path's shape.
    pub fn env(
        vars: impl IntoIterator<Item = (String, String)>,
        reserved: &BTreeSet<String>,
    ) -> Result<Self, ConfigError> {
        let top = field_names::<Config>();
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX) && !reserved.contains(name))
            .collect();
        vars.sort();
        let mut entries = Vec::new();
        let mut ids: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (var, value) in vars {
            let path: Vec<String> =
                var[ENV_PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(invalid(&path.join("."), format!("{var}: an empty name between `__`")));
            }
            if path.len() == 1 && !top.contains(&path[0].as_str()) {
                continue;
            }
            if path[0] == "deployments" {
                if path.len() < 3 {
                    return Err(invalid(
                        "deployments",
                        format!("{var}: name a setting: FERRY_DEPLOYMENTS__<LABEL>__ID or __<SETTING>"),
                    ));
                }
                if path.len() == 3 && path[2] == "id" {
                    if value.trim().is_empty() {
                        return Err(invalid("deployments", format!("{var} is empty")));
                    }
                    ids.insert(path[1].clone(), (value.trim().to_owned(), var));
                    continue;
                }
            }
            entries.push((path, value, var));
        }
        let mut layer = Self::new("environment");
        for (id, var) in ids.values() {
            layer.set(&["deployments", id], Dict::new(), var.clone())?;
        }
        for (mut path, value, var) in entries {
            if path[0] == "deployments"
                && let Some((id, _)) = ids.get(&path[1])
            {
                path[1].clone_from(id);
            }
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            layer.set(&path, env_value(&value), var)?;
        }
        for (key, value) in &mut layer.dict {
            lists_from_indices(value, key == "deployments");
        }
        Ok(layer)
    }

    /// Sets the value at `path`; `label` names where it came from.
    ///
    /// # Errors
    /// When `path` is empty or runs through a value that is not a table.
    pub fn set(
        &mut self,
        path: &[&str],
        value: impl Into<Value>,
        label: impl Into<String>,
    ) -> Result<(), ConfigError> {
        let Some((last, parents)) = path.split_last() else {
            return Err(invalid("(configuration)", "a setting without a name"));
        };
        let mut dict = &mut self.dict;
        for (i, key) in parents.iter().enumerate() {
            let entry = dict.entry((*key).to_owned()).or_insert_with(|| Dict::new().into());
            let Value::Dict(_, inner) = entry else {
                return Err(invalid(&path[..=i].join("."), "is a value and a table at once"));
            };
            dict = inner;
        }
        match (dict.get_mut(*last), value.into()) {
            (Some(Value::Dict(_, old)), Value::Dict(_, new)) => old.extend(new),
            (_, value) => {
                dict.insert((*last).to_owned(), value);
            }
        }
        self.labels.insert(path.iter().map(|k| (*k).to_owned()).collect(), label.into());
        Ok(())
    }

    /// Whether a value is set at `path` (or below it).
    pub fn contains(&self, path: &[&str]) -> bool {
        let Some((first, rest)) = path.split_first() else { return true };
        let mut value = self.dict.get(*first);
        for key in rest {
            value = match value {
                Some(Value::Dict(_, dict)) => dict.get(*key),
                _ => None,
            };
        }
        value.is_some()
    }

    /// The label of the value set at exactly `path`, if one is.
    pub fn label(&self, path: &[&str]) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k.iter().map(String::as_str).eq(path.iter().copied()))
            .map(|(_, l)| l.as_str())
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let labels = Arc::new(self.labels.clone());
        let name = self.name.clone();
        Metadata::named(self.name.clone()).interpolater(move |_: &Profile, keys: &[&str]| {
            label_for(&labels, keys).unwrap_or_else(|| name.clone())
        })
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The label for `keys`: its own; else the nearest above it (a TOML array given whole); else
/// every label below it (a list given by index, a secret given as `__FILE`).
fn label_for(labels: &BTreeMap<Vec<String>, String>, keys: &[&str]) -> Option<String> {
    let is_prefix = |short: &[String], long: &[&str]| {
        short.len() <= long.len() && short.iter().zip(long).all(|(a, b)| a == b)
    };
    if let Some((_, label)) = labels.iter().filter(|(k, _)| is_prefix(k, keys)).max_by_key(|(k, _)| k.len()) {
        return Some(label.clone());
    }
    let below: Vec<&str> = labels
        .iter()
        .filter(|(k, _)| k.len() > keys.len() && k.iter().zip(keys).all(|(a, b)| a == b))
        .map(|(_, l)| l.as_str())
        .collect();
    (!below.is_empty()).then(|| below.join(", "))
}

/// A variable's value: text, or a TOML array when it is one (`["a", "b"]`).
fn env_value(text: &str) -> Value {
    if text.trim_start().starts_with('[')
        && let Ok(mut dict) = toml::from_str::<Dict>(&format!("v = {text}"))
        && let Some(array) = dict.remove("v")
    {
        return array;
    }
    Value::from(text)
}

/// Tables whose keys are all indices (`FERRY_LINK_KEYS__0__ID`) become lists, in index order;
/// the deployments table is keyed by id, never a list.
fn lists_from_indices(value: &mut Value, keyed_by_id: bool) {
    if let Value::Dict(tag, dict) = value {
        for child in dict.values_mut() {
            lists_from_indices(child, false);
        }
        if !keyed_by_id && !dict.is_empty() && dict.keys().all(|k| k.parse::<usize>().is_ok()) {
            let mut items: Vec<(usize, Value)> =
                std::mem::take(dict).into_iter().map(|(k, v)| (k.parse().unwrap_or(usize::MAX), v)).collect();
            items.sort_by_key(|(i, _)| *i);
            *value = Value::Array(*tag, items.into_iter().map(|(_, v)| v).collect());
        }
    }
}

/// The configuration merged from its layers, and where each value came from.
pub struct Loaded {
    /// The configuration (not validated yet).
    pub config: Config,
    figment: Figment,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Loaded {
    /// Merges `layers` in order (a later one wins) over the defaults.
    ///
    /// # Errors
    /// A value of the wrong type or an unknown setting; the error names the setting and where
    /// the value came from (the variable, the flag or the file), never a value in quotes.
    pub fn from_layers(layers: impl IntoIterator<Item = Layer>) -> Result<Self, ConfigError> {
        let figment = layers.into_iter().fold(Figment::new(), Figment::merge);
        let config: Config = figment.extract_lossy().map_err(|e| figment_error(&e))?;
        Ok(Self { config, figment })
    }

    /// Where the value at `path` came from: a variable's name, a flag, `file <path>`, or
    /// `default` when nothing set it.
    pub fn source_of(&self, path: &[&str]) -> String {
        let data = self.figment.data().ok();
        let mut value = data.as_ref().and_then(|d| d.get(&Profile::Default)).map(|d| Value::from(d.clone()));
        for key in path {
            value = match value {
                Some(Value::Dict(_, mut dict)) => dict.remove(*key),
                Some(Value::Array(_, mut items)) => {
                    key.parse::<usize>().ok().filter(|i| *i < items.len()).map(|i| items.swap_remove(i))
                }
                _ => None,
            };
        }
        let Some(value) = value.filter(|_| !path.is_empty()) else { return "default".into() };
        match self.figment.get_metadata(value.tag()) {
            Some(metadata) => metadata.interpolate(&Profile::Default, path),
            None => "default".into(),
        }
    }

    /// `error` with where its setting's value came from (`set by FERRY_…`, or `not set`).
    pub fn explain(&self, error: ConfigError) -> ConfigError {
        let path: Vec<&str> = error.setting.split('.').collect();
        let source = self.source_of(&path);
        let from = if source == "default" { "not set".to_owned() } else { format!("from {source}") };
        ConfigError { problem: format!("{} ({from})", error.problem), setting: error.setting }
    }
}

/// A figment error as a [`ConfigError`]: the setting, the problem with quoted values elided, and
/// the value's source.
fn figment_error(error: &figment::Error) -> ConfigError {
    let mut path = error.path.clone();
    if let figment::error::Kind::UnknownField(field, _) = &error.kind
        && path.last() != Some(field)
    {
        path.push(field.clone());
    }
    let setting = if path.is_empty() { "(configuration)".to_owned() } else { path.join(".") };
    let mut problem = elide_quoted(&error.kind.to_string());
    if let figment::error::Kind::UnknownField(field, _) = &error.kind {
        problem = format!("`{field}` is not a setting here");
    }
    if let Some(metadata) = &error.metadata {
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        problem = format!("{problem} (from {})", metadata.interpolate(&Profile::Default, &keys));
    }
    ConfigError { setting, problem }
}

/// The field names of a struct that derives `Deserialize` (read from the derive's own list).
fn field_names<'de, T: serde::Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor, value::Error};
    struct Recorder<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Recorder<'_> {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(Error::custom("recorded"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Recorder(&mut fields));
    fields
}
