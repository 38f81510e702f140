//! `samestack init`: ask (on a TTY) or take flags (`--yes`), then write samestack.yaml, the
//! project's dev profile, the .gitignore rule for local secrets, and a generated local
//! database password. Never overwrites without `--force`.

use std::path::Path;

use anyhow::Context as _;

use crate::cli::InitArgs;
use crate::commands::{ExitStatus, Session};
use crate::config;
use crate::config::scaffold::{self, Answers};
use crate::error::{Classify, ErrorKind};

/// Why `init` wrote nothing. All of them are the user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `init` would overwrite files.
    #[error(
        "{paths} already exist(s); samestack init never overwrites\n  fix: pass --force to overwrite, or run init in another directory"
    )]
    Exists { paths: String },
    /// `init` needs answers but there is no terminal to ask on.
    #[error(
        "not a terminal, so samestack init cannot ask questions\n  fix: pass --yes (plus --name, --service, --port, --image, --database, --provider as needed)"
    )]
    NoTerminal,
    /// An answer given to `init` is invalid.
    #[error("{0}")]
    Answer(String),
    /// The answers make a project file that does not validate (the cause says where).
    #[error("the project file made from these answers does not validate\n  fix: change the answer the cause names")]
    Generated(#[source] config::Error),
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        ErrorKind::User
    }
}
crate::classify!(Error);

fn default_name(dir: &Path) -> String {
    let base = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "my-app".into());
    let mut s: String = base.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    while s.contains("--") {
        s = s.replace("--", "-");
    }
    let s = s.trim_matches('-').chars().take(63).collect::<String>();
    if config::is_dns_label(&s) { s } else { "my-app".into() }
}

fn ask(args: &InitArgs, dir: &Path) -> anyhow::Result<Answers> {
    use dialoguer::{Confirm, Input, Select, theme::ColorfulTheme};
    let theme = ColorfulTheme::default();
    let name: String = Input::with_theme(&theme)
        .with_prompt("Project name (also the namespace)")
        .default(args.name.clone().unwrap_or_else(|| default_name(dir)))
        .validate_with(|s: &String| {
            if config::is_dns_label(s) { Ok(()) } else { Err("lowercase letters, digits and '-', at most 63") }
        })
        .interact_text()?;
    let service: String = Input::with_theme(&theme)
        .with_prompt("First service name")
        .default(args.service.clone())
        .validate_with(
            |s: &String| if config::is_dns_label(s) { Ok(()) } else { Err("lowercase letters, digits and '-'") },
        )
        .interact_text()?;
    let port: u16 = Input::with_theme(&theme).with_prompt("Port it listens on").default(args.port).interact_text()?;
    let build = Select::with_theme(&theme)
        .with_prompt("Where does its image come from?")
        .items(["build from a local Dockerfile", "a prebuilt image"])
        .default(usize::from(args.image.is_some()))
        .interact()?;
    let (image, context) = if build == 0 {
        let ctx: String = Input::with_theme(&theme)
            .with_prompt("Build context directory")
            .default(args.context.clone())
            .interact_text()?;
        (None, ctx)
    } else {
        let img: String = Input::with_theme(&theme)
            .with_prompt("Image (with a pinned tag)")
            .default(args.image.clone().unwrap_or_else(|| "nginx:1.27.2".into()))
            .validate_with(|s: &String| {
                if config::image_is_pinned(s) { Ok(()) } else { Err("pin a tag other than latest, e.g. nginx:1.27.2") }
            })
            .interact_text()?;
        (Some(img), args.context.clone())
    };
    let database =
        Confirm::with_theme(&theme).with_prompt("Add a postgres database?").default(args.database).interact()?;
    let providers = ["auto", "docker", "kind", "k3d", "existing"];
    let idx = Select::with_theme(&theme)
        .with_prompt("Cluster provider")
        .items(providers)
        .default(providers.iter().position(|p| *p == args.provider.as_str()).unwrap_or(0))
        .interact()?;
    let provider = [
        config::Provider::Auto,
        config::Provider::Docker,
        config::Provider::Kind,
        config::Provider::K3d,
        config::Provider::Existing,
    ][idx];
    Ok(Answers { name, service, port, image, context, database, provider })
}

fn from_flags(args: &InitArgs, dir: &Path) -> Result<Answers, Error> {
    let name = args.name.clone().unwrap_or_else(|| default_name(dir));
    if !config::is_dns_label(&name) {
        return Err(Error::Answer(format!(
            "--name `{name}` is not a valid Kubernetes name\n  fix: use lowercase letters, digits and '-', at most 63 characters"
        )));
    }
    if !config::is_dns_label(&args.service) {
        return Err(Error::Answer(format!(
            "--service `{}` is not a valid Kubernetes name\n  fix: use lowercase letters, digits and '-'",
            args.service
        )));
    }
    if let Some(img) = &args.image
        && !config::image_is_pinned(img)
    {
        return Err(Error::Answer(format!(
            "--image `{img}` is not pinned (no tag, or latest)\n  fix: pin a version, e.g. nginx:1.27.2"
        )));
    }
    Ok(Answers {
        name,
        service: args.service.clone(),
        port: args.port,
        image: args.image.clone(),
        context: args.context.clone(),
        database: args.database,
        provider: args.provider,
    })
}

fn random_password() -> std::io::Result<String> {
    use std::io::Read as _;
    let mut buf = [0u8; 18];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

pub async fn run(session: &Session<'_>, args: InitArgs) -> anyhow::Result<ExitStatus> {
    let file = session.global.file.clone();
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
    let join = |rel: &str| if dir == Path::new(".") { Path::new(rel).to_path_buf() } else { dir.join(rel) };
    let profile_path = join("profiles/dev.yaml");
    if !args.force {
        let existing: Vec<String> =
            [&file, &profile_path].iter().filter(|p| p.exists()).map(|p| p.display().to_string()).collect();
        if !existing.is_empty() {
            return Err(Error::Exists { paths: existing.join(" and ") }.into());
        }
    }
    let answers = if args.yes {
        from_flags(&args, &dir)?
    } else if crate::ui::interactive() {
        ask(&args, &dir)?
    } else {
        return Err(Error::NoTerminal.into());
    };
    let text = scaffold::project_file(&answers);
    // What init writes must load. The answers are checked above and written quoted, so this
    // should not fail; if it does, the location names the answer, which the user can change.
    config::parse_str(&file.display().to_string(), text.as_bytes()).map_err(Error::Generated)?;

    std::fs::create_dir_all(join("profiles")).with_context(|| format!("creating {}", join("profiles").display()))?;
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    std::fs::write(&profile_path, scaffold::dev_profile())
        .with_context(|| format!("writing {}", profile_path.display()))?;
    let gitignore = join(".gitignore");
    let existing = std::fs::read_to_string(&gitignore).ok();
    if let Some(new) = scaffold::gitignore(existing.as_deref()) {
        std::fs::write(&gitignore, new).with_context(|| format!("writing {}", gitignore.display()))?;
    }
    if answers.database {
        let secret = join(".secrets/db-password");
        if !secret.exists() {
            std::fs::create_dir_all(join(".secrets")).context("creating .secrets")?;
            std::fs::write(&secret, random_password().context("reading /dev/urandom")? + "\n")
                .with_context(|| format!("writing {}", secret.display()))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("protecting {}", secret.display()))?;
            }
        }
    }
    session.printer.line(format!(
        "wrote {} and {} (.secrets/ is git-ignored)\nnext: samestack render --profile prod, then samestack up",
        file.display(),
        profile_path.display()
    ));
    Ok(ExitStatus::Success)
}
