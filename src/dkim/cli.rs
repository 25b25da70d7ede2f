//! `postern dkim keygen | check | bench`: make a key and say what to
//! publish, compare the published record with the key, and measure what
//! signing costs.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::key::{Algorithm, PrivateKey};
use super::sign::{Signer, from_domain, sign_message};
use super::{KeyEntry, record};
use crate::config::Config;
use crate::policy::dns::{Answer, Resolver, Rtype};

/// Where `postern dkim keygen` writes keys: outside /etc, which every
/// role's sandbox reads, so that only the smtp client's can.
pub const DEFAULT_DIR: &str = "/var/lib/postern/dkim";

/// `postern dkim keygen`: `DIR/DOMAIN.SELECTOR.key` (0600; the file and a
/// directory made for it owned by `user` when run as root), never over
/// an existing file; prints the DNS record and the `dkim.keys` entry.
pub fn keygen(
    domain: &str,
    selector: &str,
    algorithm: Algorithm,
    bits: usize,
    dir: &Path,
    user: &str,
) -> anyhow::Result<()> {
    if !dir.is_absolute() {
        anyhow::bail!("--dir {}: an absolute path, please", dir.display());
    }
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let selector = selector.to_ascii_lowercase();
    let path = dir.join(format!("{domain}.{selector}.key"));
    let entry = KeyEntry::parse(&format!("{domain}:{selector}:{}", path.display()))
        .map_err(anyhow::Error::msg)?;
    if std::fs::symlink_metadata(&path).is_ok() {
        anyhow::bail!(
            "{} exists: a key is never overwritten (remove it first, or choose another selector)",
            path.display()
        );
    }
    let (pem, key) = PrivateKey::generate(algorithm, bits).map_err(anyhow::Error::msg)?;
    let owner = (nix::unistd::geteuid().is_root())
        .then(|| nix::unistd::User::from_name(user).ok().flatten())
        .flatten();
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| anyhow::anyhow!("cannot make {}: {e}", dir.display()))?;
        if let Some(u) = &owner {
            std::os::unix::fs::chown(dir, Some(u.uid.as_raw()), Some(u.gid.as_raw()))?;
        }
    }
    write_key(&path, &pem, owner.as_ref())?;
    print!("{}", keygen_report(&entry, &key, bits));
    Ok(())
}

/// The new file: created, never replaced, 0600, synced.
fn write_key(path: &Path, pem: &str, owner: Option<&nix::unistd::User>) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    f.write_all(pem.as_bytes())?;
    if let Some(u) = owner {
        std::os::unix::fs::chown(path, Some(u.uid.as_raw()), Some(u.gid.as_raw()))?;
    }
    f.sync_all()?;
    Ok(())
}

/// What keygen prints: the file, the record to publish, the entry.
fn keygen_report(entry: &KeyEntry, key: &PrivateKey, bits: usize) -> String {
    let size = match key.algorithm {
        Algorithm::Rsa => format!(", {bits} bits"),
        Algorithm::Ed25519 => String::new(),
    };
    format!(
        "Wrote {} ({}{size}).\n\n\
         Publish this record in the DNS zone of {}:\n\n{}\n\n\
         Then add the key to postern.toml (to the list, if there is one) and restart postern's smtp:\n\n\
         [dkim]\nkeys = [\"{entry}\"]\n\n\
         `postern dkim check {} {}` compares what the DNS publishes with the key.\n",
        entry.path.display(),
        key.algorithm.name(),
        entry.domain,
        record::zone_line(&entry.record_name(), &record::text(key)),
        entry.domain,
        entry.selector,
    )
}

/// `postern dkim check DOMAIN SELECTOR`: the TXT record at
/// `SELECTOR._domainkey.DOMAIN`, looked up as the daemons do
/// (`dns.servers`), compared with the key `dkim.keys` names for them.
/// `Ok(true)` when the DNS publishes that key; what differs is printed.
pub fn check(config: &Config, domain: &str, selector: &str) -> anyhow::Result<bool> {
    let (domain, selector) = (
        domain.trim_end_matches('.').to_ascii_lowercase(),
        selector.to_ascii_lowercase(),
    );
    let Some(entry) = config
        .dkim
        .keys
        .iter()
        .find(|e| e.domain == domain && e.selector == selector)
    else {
        println!("dkim.keys has no key for {domain} with selector {selector}");
        return Ok(false);
    };
    let key = match PrivateKey::load(&entry.path) {
        Ok(k) => k,
        Err(e) => {
            println!("the key of {domain} ({selector}) cannot be used: {e}");
            return Ok(false);
        }
    };
    let name = entry.record_name();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(Resolver::new(&config.dns.servers).lookup(&name, Rtype::Txt));
    let publish = record::zone_line(&name, &record::text(&key));
    let records = match answer {
        Answer::Found(records) => records,
        other => {
            println!("{name}: no DKIM record: {other}\nPublish:\n{publish}");
            return Ok(false);
        }
    };
    let mut good = false;
    for text in &records {
        println!("{name}: TXT \"{text}\"");
        match record::compare(text, &key) {
            Ok(()) => good = true,
            Err(why) => println!("  differs from {}: {why}", entry.path.display()),
        }
    }
    if good {
        println!(
            "{name} publishes the key of {} ({})",
            entry.path.display(),
            key.algorithm.name()
        );
    } else {
        println!("Publish instead:\n{publish}");
    }
    Ok(good)
}

/// `postern dkim bench`: sign `messages` messages of `size` bytes with a
/// new RSA key of 2048 bits, an Ed25519 key and both (dual signing), as
/// the smtp client does (CRLF form, From: domain, signatures); one line
/// per case with the time per message.
pub fn bench(messages: usize, size: usize) -> anyhow::Result<()> {
    let message = bench_message(size);
    let settings = crate::config::Config::builtin().dkim;
    let signer = |algorithm, selector: &str| -> anyhow::Result<Arc<Signer>> {
        let (_, key) = PrivateKey::generate(algorithm, 2048).map_err(anyhow::Error::msg)?;
        let entry = KeyEntry {
            domain: "example.org".into(),
            selector: selector.into(),
            path: PathBuf::from("/dev/null"),
        };
        Ok(Arc::new(Signer::new(entry, key, &settings)))
    };
    let rsa = signer(Algorithm::Rsa, "rsa")?;
    let ed = signer(Algorithm::Ed25519, "ed")?;
    let cases = [
        ("rsa-sha256 (2048 bits)", vec![rsa.clone()]),
        ("ed25519-sha256", vec![ed.clone()]),
        ("both (dual signing)", vec![rsa, ed]),
    ];
    println!(
        "DKIM signing, {messages} messages of {} bytes, {}:",
        message.len(),
        crate::config::Config::builtin()
            .dkim
            .canonicalization
            .as_str()
    );
    for (name, signers) in cases {
        let started = Instant::now();
        for _ in 0..messages {
            let domain = from_domain(&message);
            let signed = sign_message(&signers, &message).map_err(anyhow::Error::msg)?;
            std::hint::black_box((domain, signed));
        }
        let each = started.elapsed().as_secs_f64() * 1e6 / messages.max(1) as f64;
        println!(
            "  {name:<24} {each:>9.1} µs/message  {:>8.0} messages/s",
            1e6 / each
        );
    }
    Ok(())
}

/// A plain-text message of about `size` bytes, LF line ends as queued.
fn bench_message(size: usize) -> Vec<u8> {
    let mut m = b"From: Alice <alice@example.org>\nTo: bob@example.net\nSubject: benchmark\n\
Date: Mon, 7 Dec 2026 09:00:00 +0000\nMessage-ID: <bench@example.org>\nMIME-Version: 1.0\n\
Content-Type: text/plain; charset=utf-8\n\n"
        .to_vec();
    let line = b"The quick brown fox jumps over the lazy dog, again and again.\n";
    while m.len() + line.len() <= size {
        m.extend_from_slice(line);
    }
    m
}
