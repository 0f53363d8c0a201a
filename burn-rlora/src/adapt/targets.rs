//! [`TargetModules`]: which layers of a model get an adapter, by path.

use serde::{Deserialize, Serialize};

use crate::RLoraError;

/// The layers to adapt, by their path in the model: the field names from the
/// model's root, joined by `.`, with the index of a `Vec` or array element
/// (`encoder.layer.0.output.dense`). These are the paths under which
/// [`checkpoint`](crate::checkpoint) names the layers.
///
/// The two forms are those of PEFT's `target_modules`:
///
/// * [`Names`](Self::Names): a layer is targeted when its path equals one of
///   the names or ends with `.` followed by one (`dense` targets every layer
///   whose field is called `dense`; `intermediate.dense` only those under an
///   `intermediate`). In JSON, a list of strings.
/// * [`Regex`](Self::Regex): a layer is targeted when the regular expression
///   matches its whole path. In JSON, one string.
///
/// Every name, and the expression, must target at least one layer:
/// a target that matches nothing is an error
/// ([`RLoraError::TargetNotFound`]), not a silent no-op.
///
/// ```
/// use burn_rlora::TargetModules;
///
/// let names = TargetModules::names(["query", "value"]);
/// assert!(names.is_match("blocks.3.attention.query")?);
/// assert!(!names.is_match("blocks.3.attention.key")?);
///
/// let regex = TargetModules::regex(r"blocks\.[01]\..*");
/// assert!(regex.is_match("blocks.1.mlp.up")?);
/// assert!(!regex.is_match("blocks.12.mlp.up")?);
/// # Ok::<(), burn_rlora::RLoraError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// Paths or path suffixes (on `.` boundaries).
    Names(Vec<String>),
    /// A regular expression that must match the whole path.
    Regex(String),
}

impl TargetModules {
    /// Target the layers whose path ends with one of `names`.
    pub fn names<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self::Names(names.into_iter().map(Into::into).collect())
    }

    /// Target the layers whose whole path matches `pattern`.
    pub fn regex(pattern: impl Into<String>) -> Self {
        Self::Regex(pattern.into())
    }

    /// Whether the layer at `path` is targeted.
    ///
    /// # Errors
    ///
    /// [`RLoraError::InvalidTarget`] for an empty list, an empty or malformed
    /// name, or an expression that does not compile.
    pub fn is_match(&self, path: &str) -> Result<bool, RLoraError> {
        Ok(Matcher::new(self)?.matching(path).next().is_some())
    }

    /// Each target as written, in order (the expression alone for a regex).
    pub fn targets(&self) -> Vec<String> {
        match self {
            Self::Names(names) => names.clone(),
            Self::Regex(pattern) => vec![pattern.clone()],
        }
    }
}

impl<S: Into<String>> FromIterator<S> for TargetModules {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self::names(iter)
    }
}

/// [`TargetModules`] checked and compiled.
#[derive(Debug)]
pub(crate) enum Matcher {
    Names(Vec<String>),
    Regex(regex::Regex),
}

impl Matcher {
    pub fn new(targets: &TargetModules) -> Result<Self, RLoraError> {
        let invalid = |target: &str, reason: &str| RLoraError::InvalidTarget {
            target: target.to_string(),
            reason: reason.to_string(),
        };
        match targets {
            TargetModules::Names(names) => {
                if names.is_empty() {
                    return Err(invalid("", "no target modules given"));
                }
                for name in names {
                    if name.trim().is_empty() {
                        return Err(invalid(name, "an empty name targets nothing"));
                    }
                    if name.chars().any(char::is_whitespace) {
                        return Err(invalid(name, "a module path has no whitespace"));
                    }
                    if name.split('.').any(str::is_empty) {
                        return Err(invalid(
                            name,
                            "a name is field names joined by single dots, with none at either end",
                        ));
                    }
                }
                Ok(Self::Names(names.clone()))
            }
            TargetModules::Regex(pattern) => {
                if pattern.is_empty() {
                    return Err(invalid(pattern, "an empty expression targets nothing"));
                }
                regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map(Self::Regex)
                    .map_err(|e| invalid(pattern, &format!("not a regular expression: {e}")))
            }
        }
    }

    /// The indices of the targets that match `path`.
    pub fn matching<'a>(&'a self, path: &'a str) -> impl Iterator<Item = usize> + 'a {
        let (names, regex): (&[String], _) = match self {
            Self::Names(names) => (names, None),
            Self::Regex(regex) => (&[], Some(regex)),
        };
        let by_name = names.iter().enumerate().filter_map(move |(i, name)| {
            let suffix = path
                .strip_suffix(name.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'));
            suffix.then_some(i)
        });
        by_name.chain(regex.filter(|r| r.is_match(path)).map(|_| 0))
    }

    /// How many targets there are.
    pub fn len(&self) -> usize {
        match self {
            Self::Names(names) => names.len(),
            Self::Regex(_) => 1,
        }
    }
}
