//! Mapping the path of an adapted module in a Burn model to its name in a checkpoint.

use std::collections::BTreeMap;

use burn_store::KeyRemapper;

use super::error::CheckpointError;

/// How the path of an adapted module in the Burn model (for example
/// `layers.0.mlp.up_proj`, from the field names) becomes its name in the
/// checkpoint: first the rename rules, in order (regex and replacement, as
/// in burn-store's [`KeyRemapper`]), then the prefix. A model that is a
/// single layer has an empty path: its name is the prefix without a trailing
/// dot, or `layer` without a prefix.
///
/// ```
/// use burn_rlora::checkpoint::ModuleNaming;
///
/// // A Burn model whose fields follow the Python names, saved for PEFT.
/// let peft = ModuleNaming::new().with_prefix("base_model.model.");
/// assert_eq!(peft.name("model.layers.0.mlp.up_proj").unwrap(),
///            "base_model.model.model.layers.0.mlp.up_proj");
///
/// // A Burn BERT whose fields differ from the Python ones.
/// let bert = ModuleNaming::new()
///     .with_rule(r"^layers\.(\d+)\.ffn\.up$", "encoder.layer.$1.intermediate.dense")
///     .with_rule(r"^layers\.(\d+)\.ffn\.down$", "encoder.layer.$1.output.dense");
/// assert_eq!(bert.name("layers.3.ffn.up").unwrap(), "encoder.layer.3.intermediate.dense");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleNaming {
    /// Prepended to every module name after the rules.
    pub prefix: String,
    /// `(regex, replacement)` pairs applied in order; `$1` refers to groups.
    pub rules: Vec<(String, String)>,
}

impl ModuleNaming {
    /// The identity: checkpoint names are the Burn module paths.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set the prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Add a rename rule (regex, replacement).
    pub fn with_rule(mut self, pattern: impl Into<String>, replacement: impl Into<String>) -> Self {
        self.rules.push((pattern.into(), replacement.into()));
        self
    }

    fn compiled(&self) -> Result<KeyRemapper, CheckpointError> {
        let mut remapper = KeyRemapper::new();
        for (pattern, replacement) in &self.rules {
            remapper = remapper
                .add_pattern(pattern.as_str(), replacement.as_str())
                .map_err(|e| CheckpointError::InvalidRule {
                    pattern: pattern.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(remapper)
    }

    /// The checkpoint name of the module at Burn path `path`.
    ///
    /// # Errors
    ///
    /// [`CheckpointError::InvalidRule`] if a rule's regex does not compile.
    pub fn name(&self, path: &str) -> Result<String, CheckpointError> {
        Ok(self.apply(&self.compiled()?, path))
    }

    fn apply(&self, remapper: &KeyRemapper, path: &str) -> String {
        let mut name = path.to_string();
        for (regex, replacement) in remapper.to_regex_pairs() {
            name = regex.replace_all(&name, replacement.as_str()).into_owned();
        }
        if name.is_empty() {
            // The model is a single layer: its name is the prefix, or "layer".
            let prefix = self.prefix.trim_end_matches('.');
            return if prefix.is_empty() {
                "layer".into()
            } else {
                prefix.into()
            };
        }
        format!("{}{}", self.prefix, name)
    }

    /// Names for all module paths, checking that no two collide.
    pub(crate) fn names<'a>(
        &self,
        paths: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<String>, CheckpointError> {
        let remapper = self.compiled()?;
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        for path in paths {
            let name = self.apply(&remapper, path);
            if let Some(first) = seen.insert(name.clone(), path.to_string()) {
                return Err(CheckpointError::DuplicateModuleName {
                    name,
                    first,
                    second: path.to_string(),
                });
            }
            out.push(name);
        }
        Ok(out)
    }
}
