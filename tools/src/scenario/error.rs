//! Errors in a scenario file, located by path, line and dotted field, and
//! the context (`Cx`) that builds them from TOML spans.

use std::fmt;
use std::path::{Path, PathBuf};

use toml::Spanned;

/// An error in a scenario file.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed or a value is invalid.
    #[error("{}", .0)]
    Invalid(Box<Located>),
}

/// A scenario error located in the file: path, line and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The scenario file, as given by the user.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted field path such as `domain[1].memory_mib`, when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl ScenarioError {
    /// The located error, if this is one.
    pub fn located(&self) -> Option<&Located> {
        match self {
            ScenarioError::Invalid(l) => Some(l),
            ScenarioError::Read { .. } => None,
        }
    }
}

pub(super) struct Cx<'a> {
    pub(super) src: &'a str,
    pub(super) path: &'a Path,
}

impl Cx<'_> {
    pub(super) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    pub(super) fn err(
        &self,
        line: Option<usize>,
        field: Option<String>,
        message: String,
    ) -> ScenarioError {
        ScenarioError::Invalid(Box::new(Located {
            path: self.path.to_owned(),
            line,
            field,
            message,
        }))
    }

    pub(super) fn at<T>(&self, v: &Spanned<T>, field: String, message: String) -> ScenarioError {
        self.err(Some(self.line(v.span().start)), Some(field), message)
    }

    pub(super) fn int_in(
        &self,
        v: &Spanned<i64>,
        field: &str,
        lo: i64,
        hi: i64,
    ) -> Result<i64, ScenarioError> {
        let x = *v.get_ref();
        if (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(self.at(
                v,
                field.to_owned(),
                format!("{x} is out of range {lo}..={hi}"),
            ))
        }
    }

    pub(super) fn toml_error(&self, e: &toml::de::Error) -> ScenarioError {
        let message = e.message().trim().to_owned();
        match e.span() {
            Some(span) => {
                let field = field_at(self.src, span.start);
                self.err(Some(self.line(span.start)), field, message)
            }
            None => self.err(None, None, message),
        }
    }
}

/// Guesses the dotted field path of the key on the line containing `offset`,
/// from the table headers above it (`machine`, `domain[N]`).
fn field_at(src: &str, offset: usize) -> Option<String> {
    let offset = offset.min(src.len());
    let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
    let mut section: Option<String> = None;
    let mut domain_idx: usize = 0;
    let mut header = |line: &str, section: &mut Option<String>| -> Option<String> {
        let t = strip_comment(line).trim();
        if let Some(inner) = t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let name = inner.trim();
            let s = if name == "domain" {
                domain_idx += 1;
                format!("domain[{}]", domain_idx - 1)
            } else {
                name.to_owned()
            };
            *section = Some(s.clone());
            Some(s)
        } else if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let s = inner.trim().to_owned();
            *section = Some(s.clone());
            Some(s)
        } else {
            None
        }
    };
    for line in src[..line_start].lines() {
        header(line, &mut section);
    }
    let current = &src[line_start..line_end];
    if let Some(h) = header(current, &mut section) {
        return Some(h);
    }
    let code = strip_comment(current);
    let key = code
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches(|c| c == '"' || c == '\'').to_owned());
    match (section, key) {
        (Some(s), Some(k)) if !k.is_empty() => Some(format!("{s}.{k}")),
        (None, Some(k)) if !k.is_empty() => Some(k),
        (s, _) => s,
    }
}

fn strip_comment(line: &str) -> &str {
    // Good enough for locating keys: a '#' inside a string on an erroneous line
    // only shortens what we look at.
    line.split('#').next().unwrap_or("")
}
