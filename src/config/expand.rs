//! `$name` expansion, Postfix-style: `$name`, `${name}` and `$(name)` refer
//! to a `[server]` setting (`hostname`, `domain`, `origin`, `user`, or
//! Postfix's `myhostname`, `mydomain`, `myorigin`, `mail_owner`); `$$` is a
//! literal `$`. References are resolved recursively, from the file or from
//! the defaults; a cycle or an unknown name is an error at the line of the
//! string that holds it.

use super::defaults::{self, System};
use super::error::{ConfigError, nearest};
use super::value::{check_hostname, check_user};

/// A string from the file, with its dotted key and line.
#[derive(Clone, Debug)]
pub(super) struct Located {
    pub text: String,
    pub key: String,
    pub line: usize,
}

/// The settings a string may refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Var {
    Hostname,
    Domain,
    Origin,
    User,
}

impl Var {
    const ALL: [Var; 4] = [Var::Hostname, Var::Domain, Var::Origin, Var::User];

    /// postern's name, which is also the key in `[server]`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Var::Hostname => "hostname",
            Var::Domain => "domain",
            Var::Origin => "origin",
            Var::User => "user",
        }
    }

    fn postfix_name(self) -> &'static str {
        match self {
            Var::Hostname => "myhostname",
            Var::Domain => "mydomain",
            Var::Origin => "myorigin",
            Var::User => "mail_owner",
        }
    }

    fn from_name(name: &str) -> Option<Var> {
        Var::ALL
            .into_iter()
            .find(|v| v.name() == name || v.postfix_name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One piece of a template.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Token<'a> {
    /// Literal text (`$$` yields a `"$"` token).
    Text(&'a str),
    /// A reference to the named variable.
    Ref(&'a str),
}

/// Splits a template into literal text and references.
pub(super) fn tokenize(template: &str) -> Result<Vec<Token<'_>>, String> {
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = template.as_bytes();
    let mut tokens = Vec::new();
    let mut start = 0;
    while let Some(offset) = template[start..].find('$') {
        let dollar = start + offset;
        if dollar > start {
            tokens.push(Token::Text(&template[start..dollar]));
        }
        let after = dollar + 1;
        match bytes.get(after) {
            Some(b'$') => {
                tokens.push(Token::Text("$"));
                start = after + 1;
            }
            Some(&open @ (b'{' | b'(')) => {
                let close = if open == b'{' { '}' } else { ')' };
                let inner = after + 1;
                let Some(len) = template[inner..].find(close) else {
                    return Err(format!(
                        "unterminated `${}`; write `$$` for a literal `$`",
                        open as char
                    ));
                };
                let name = &template[inner..inner + len];
                if name.is_empty() || !name.bytes().all(is_name) {
                    return Err(format!(
                        "bad variable name `{name}` (only plain `${}name{close}` is supported)",
                        open as char
                    ));
                }
                tokens.push(Token::Ref(name));
                start = inner + len + 1;
            }
            Some(&b) if is_name(b) => {
                let len = bytes[after..].iter().take_while(|&&b| is_name(b)).count();
                tokens.push(Token::Ref(&template[after..after + len]));
                start = after + len;
            }
            _ => return Err("lone `$`; write `$$` for a literal `$`".to_string()),
        }
    }
    if start < template.len() {
        tokens.push(Token::Text(&template[start..]));
    }
    Ok(tokens)
}

/// Escapes `$` so that the text expands to itself.
pub(super) fn escape(text: &str) -> String {
    text.replace('$', "$$")
}

/// Where an expansion is happening, for error messages.
struct Frame {
    var: Option<Var>,
    at: Option<Located>,
}

/// Resolves the `[server]` variables and expands strings that refer to them.
pub(super) struct Resolver<'a> {
    file: &'a str,
    system: &'a System,
    /// The values given in the file, by `Var::index`.
    given: [Option<Located>; 4],
    /// Resolved values, by `Var::index`.
    values: [Option<String>; 4],
    stack: Vec<Frame>,
}

impl<'a> Resolver<'a> {
    /// `given` holds the file's `server.hostname`, `server.domain`,
    /// `server.origin` and `server.user`, in that order.
    pub(crate) fn new(file: &'a str, system: &'a System, given: [Option<Located>; 4]) -> Self {
        Resolver {
            file,
            system,
            given,
            values: Default::default(),
            stack: Vec::new(),
        }
    }

    /// The value of a variable: the file's (expanded and checked) or the
    /// default.
    pub(crate) fn get(&mut self, var: Var) -> Result<String, ConfigError> {
        if let Some(value) = &self.values[var.index()] {
            return Ok(value.clone());
        }
        if let Some(first) = self.stack.iter().position(|f| f.var == Some(var)) {
            let chain: Vec<String> = self.stack[first..]
                .iter()
                .filter_map(|f| f.var)
                .chain([var])
                .map(|v| format!("${}", v.name()))
                .collect();
            return Err(self.error_here(format!("reference cycle: {}", chain.join(" -> "))));
        }
        let given = self.given[var.index()].clone();
        self.stack.push(Frame {
            var: Some(var),
            at: given.clone(),
        });
        let value = match &given {
            Some(given) => self.expand_checked(var, given),
            None => self.default(var),
        };
        self.stack.pop();
        let value = value?;
        self.values[var.index()] = Some(value.clone());
        Ok(value)
    }

    /// Expands a string from the file.
    pub(crate) fn expand(&mut self, located: &Located) -> Result<String, ConfigError> {
        self.stack.push(Frame {
            var: None,
            at: Some(located.clone()),
        });
        let value = self.expand_text(located);
        self.stack.pop();
        value
    }

    fn expand_checked(&mut self, var: Var, given: &Located) -> Result<String, ConfigError> {
        let value = self.expand_text(given)?;
        let checked = match var {
            Var::Hostname | Var::Domain | Var::Origin => check_hostname(&value),
            Var::User => check_user(&value),
        };
        checked.map_err(|reason| bad_value(self.file, given, &value, reason))?;
        Ok(value)
    }

    fn default(&mut self, var: Var) -> Result<String, ConfigError> {
        Ok(match var {
            Var::Hostname => {
                let domain = match self.given[Var::Domain.index()] {
                    Some(_) if !self.system.hostname.contains('.') => Some(self.get(Var::Domain)?),
                    _ => None,
                };
                self.system.default_hostname(domain.as_deref())
            }
            Var::Domain => defaults::default_domain(&self.get(Var::Hostname)?),
            Var::Origin => self.get(Var::Hostname)?,
            Var::User => defaults::DEFAULT_USER.to_string(),
        })
    }

    fn expand_text(&mut self, located: &Located) -> Result<String, ConfigError> {
        let tokens = tokenize(&located.text)
            .map_err(|reason| bad_value(self.file, located, &located.text, reason))?;
        let mut out = String::with_capacity(located.text.len());
        for token in tokens {
            match token {
                Token::Text(text) => out.push_str(text),
                Token::Ref(name) => {
                    let Some(var) = Var::from_name(name) else {
                        let known = Var::ALL.map(Var::name);
                        let hint = match nearest(name, known) {
                            Some(near) => format!("; did you mean `${near}`?"),
                            None => format!(" (known: ${})", known.join(", $")),
                        };
                        let reason = format!("unknown variable `${name}`{hint}");
                        return Err(bad_value(self.file, located, &located.text, reason));
                    };
                    out.push_str(&self.get(var)?);
                }
            }
        }
        Ok(out)
    }

    /// An error at the innermost string from the file being expanded.
    fn error_here(&self, reason: String) -> ConfigError {
        match self.stack.iter().rev().find_map(|f| f.at.as_ref()) {
            Some(at) => bad_value(self.file, at, &at.text, reason),
            // Unreachable: the defaults do not refer to each other in a
            // cycle, so a cycle passes through a string from the file.
            None => ConfigError::BadValue {
                file: self.file.to_string(),
                line: 1,
                key: "server".to_string(),
                value: String::new(),
                reason,
            },
        }
    }
}

/// A `BadValue` error for a string from the file; `value` is what it
/// expanded to, shown too when it differs.
pub(super) fn bad_value(file: &str, at: &Located, value: &str, reason: String) -> ConfigError {
    let value = if value == at.text {
        format!("{:?}", at.text)
    } else {
        format!("{:?} (expands to {value:?})", at.text)
    };
    ConfigError::BadValue {
        file: file.to_string(),
        line: at.line,
        key: at.key.clone(),
        value,
        reason,
    }
}

/// Checks `local.mailbox`: the only references allowed are the per-delivery
/// `$user`, `${user}`, `$home` and `${home}`.
pub(super) fn check_mailbox(template: &str) -> Result<(), String> {
    if template.is_empty() {
        return Err("empty mailbox".to_string());
    }
    if template.contains('\0') {
        return Err("NUL byte in mailbox".to_string());
    }
    let tokens = tokenize(template)?;
    let rest = template.replace("${user}", "").replace("${home}", "");
    for token in tokens {
        match token {
            Token::Ref("user" | "home") => {}
            Token::Ref(name) => {
                return Err(format!(
                    "unknown variable `${name}`; only $user and $home are expanded in the mailbox"
                ));
            }
            Token::Text("$") => return Err("`$$` is not supported in the mailbox".to_string()),
            Token::Text(_) => {}
        }
    }
    if rest.contains("$(") {
        return Err(
            "only $user, ${user}, $home and ${home} are expanded in the mailbox".to_string(),
        );
    }
    Ok(())
}
