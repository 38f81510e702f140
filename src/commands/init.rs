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
        "not a terminal, so samestack init cannot ask questions\n  fix: pass --yes (plus --name, --service, --port, --image or --build-context, --database, --provider, --kube-context as needed)"
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
    let s = config::suggest_label(&base);
    if config::is_dns_label(&s) { s } else { "my-app".into() }
}

/// What is wrong with an answer, and how to fix it.
type Refusal = (String, String);

fn check_name(name: &str) -> Result<(), Refusal> {
    if config::is_dns_label(name) {
        return Ok(());
    }
    Err((
        "is not a valid Kubernetes name (it is also the namespace)".into(),
        "use lowercase letters, digits and '-', at most 63 characters, e.g. `shop`".into(),
    ))
}

fn check_service(service: &str) -> Result<(), Refusal> {
    if !config::is_dns_label(service) || !service.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err((
            "is not a valid service name (a DNS-1035 label)".into(),
            "start with a letter; use lowercase letters, digits and '-', e.g. `web`".into(),
        ));
    }
    if config::RESERVED_NAMES.contains(&service) {
        return Err((
            format!("is a name samestack uses itself ({})", config::RESERVED_NAMES.join(", ")),
            "name the service for what it does, e.g. `api` or `web`".into(),
        ));
    }
    Ok(())
}

fn check_port(port: u16) -> Result<(), Refusal> {
    if port == 0 {
        return Err(("is not a usable port".into(), "give the port the service listens on, 1-65535, e.g. 8080".into()));
    }
    Ok(())
}

fn check_image(image: &str) -> Result<(), Refusal> {
    if config::image_is_pinned(image) {
        return Ok(());
    }
    Err(("is not pinned (no tag, or latest)".into(), "pin a version, e.g. nginx:1.27.2".into()))
}

/// The build context must be a directory inside the project that holds a Dockerfile.
fn check_build_context(dir: &Path, context: &str) -> Result<(), Refusal> {
    use config::paths::Outside;
    let resolved = config::paths::resolve_inside(dir, context).map_err(|why| {
        let why = match why {
            Outside::Absolute => "is an absolute path; the build context is relative to the project directory".into(),
            Outside::Escapes { resolved } => {
                format!("resolves to {}, outside the project directory", resolved.display())
            }
            Outside::NoRoot { error } => format!("cannot be checked: the project directory is unreadable ({error})"),
        };
        (why, "give a directory inside the project, relative to it, e.g. `.` or `./api`".to_owned())
    })?;
    if !resolved.is_dir() {
        return Err((
            format!("is not a directory ({} does not exist, or is a file)", resolved.display()),
            "create the directory with the service's Dockerfile first, or pass --image for a prebuilt image".into(),
        ));
    }
    if !resolved.join("Dockerfile").is_file() {
        return Err((
            format!("holds no Dockerfile ({} does not exist)", resolved.join("Dockerfile").display()),
            "write the Dockerfile first, point at the directory that has it, or pass --image for a prebuilt image"
                .into(),
        ));
    }
    Ok(())
}

fn check_kube_context(provider: config::Provider, context: Option<&str>) -> Result<(), Refusal> {
    match (provider, context) {
        (config::Provider::Existing, None) => Err((
            "is needed with --provider existing: it names the kubeconfig context samestack deploys to".into(),
            "pass --kube-context NAME (see `kubectl config get-contexts`)".into(),
        )),
        (config::Provider::Existing, Some(c)) if c.trim().is_empty() || c.contains(char::is_whitespace) => {
            Err(("is not a context name".into(), "pass the name `kubectl config get-contexts` lists".into()))
        }
        (config::Provider::Existing, Some(_)) | (_, None) => Ok(()),
        (other, Some(_)) => Err((
            format!("only applies to --provider existing, but the provider is `{}`", other.as_str()),
            "drop --kube-context, or pass --provider existing".into(),
        )),
    }
}

/// A refused flag, as a user error naming the flag and the value given.
fn flag_error(flag: &str, value: &str, (why, fix): Refusal) -> Error {
    Error::Answer(format!("{flag} `{}` {why}\n  fix: {fix}", crate::error::clip(value)))
}

/// A refused wizard answer, as dialoguer shows it under the prompt.
fn prompt_error((why, fix): Refusal) -> String {
    format!("{why}; {fix}")
}

fn ask(args: &InitArgs, dir: &Path) -> anyhow::Result<Answers> {
    use dialoguer::{Confirm, Input, Select, theme::ColorfulTheme};
    let theme = ColorfulTheme::default();
    let name: String = Input::with_theme(&theme)
        .with_prompt("Project name (also the namespace)")
        .default(args.name.clone().unwrap_or_else(|| default_name(dir)))
        .validate_with(|s: &String| check_name(s).map_err(prompt_error))
        .interact_text()?;
    let service: String = Input::with_theme(&theme)
        .with_prompt("First service name")
        .default(args.service.clone())
        .validate_with(|s: &String| check_service(s).map_err(prompt_error))
        .interact_text()?;
    let port: u16 = Input::with_theme(&theme)
        .with_prompt("Port it listens on")
        .default(args.port)
        .validate_with(|p: &u16| check_port(*p).map_err(prompt_error))
        .interact_text()?;
    let build = Select::with_theme(&theme)
        .with_prompt("Where does its image come from?")
        .items(["build from a local Dockerfile", "a prebuilt image"])
        .default(usize::from(args.image.is_some()))
        .interact()?;
    let (image, context) = if build == 0 {
        let ctx: String = Input::with_theme(&theme)
            .with_prompt("Build context directory (holds the Dockerfile)")
            .default(args.build_context.clone())
            .validate_with(|s: &String| check_build_context(dir, s).map_err(prompt_error))
            .interact_text()?;
        (None, ctx)
    } else {
        let img: String = Input::with_theme(&theme)
            .with_prompt("Image (with a pinned tag)")
            .default(args.image.clone().unwrap_or_else(|| "nginx:1.27.2".into()))
            .validate_with(|s: &String| check_image(s).map_err(prompt_error))
            .interact_text()?;
        (Some(img), args.build_context.clone())
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
    let kube_context = if provider == config::Provider::Existing {
        let c: String = Input::with_theme(&theme)
            .with_prompt("kubeconfig context to deploy to (`kubectl config get-contexts`)")
            .with_initial_text(args.kube_context.clone().unwrap_or_default())
            .validate_with(|s: &String| check_kube_context(provider, Some(s)).map_err(prompt_error))
            .interact_text()?;
        Some(c)
    } else {
        None
    };
    Ok(Answers { name, service, port, image, context, database, provider, kube_context })
}

/// The answers from flags (`--yes`), each checked where it is given: the error names the flag.
fn from_flags(args: &InitArgs, dir: &Path) -> Result<Answers, Error> {
    let name = args.name.clone().unwrap_or_else(|| default_name(dir));
    check_name(&name).map_err(|r| flag_error("--name", &name, r))?;
    check_service(&args.service).map_err(|r| flag_error("--service", &args.service, r))?;
    check_port(args.port).map_err(|r| flag_error("--port", &args.port.to_string(), r))?;
    match &args.image {
        Some(img) => check_image(img).map_err(|r| flag_error("--image", img, r))?,
        None => check_build_context(dir, &args.build_context)
            .map_err(|r| flag_error("--build-context", &args.build_context, r))?,
    }
    check_kube_context(args.provider, args.kube_context.as_deref())
        .map_err(|r| flag_error("--kube-context", args.kube_context.as_deref().unwrap_or(""), r))?;
    Ok(Answers {
        name,
        service: args.service.clone(),
        port: args.port,
        image: args.image.clone(),
        context: args.build_context.clone(),
        database: args.database,
        provider: args.provider,
        kube_context: args.kube_context.clone(),
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
    } else if session.interactive {
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
    std::fs::write(&profile_path, scaffold::dev_profile(crate::profile::builtin_text("dev").unwrap_or_default()))
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
        "wrote {}, {} and the .secrets/ rule in .gitignore\nnext: samestack render --profile prod, then samestack up",
        file.display(),
        profile_path.display()
    ));
    Ok(ExitStatus::Success)
}
