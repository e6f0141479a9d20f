//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ProcuHelp: procurement with tenant isolation enforced by the database.
///
/// With no database configured, every command uses the embedded PostgreSQL cluster kept
/// in the data directory (needs the PostgreSQL server binaries: Debian package
/// `postgresql`). With `--database-url-file`, that server is used instead.
#[derive(Debug, Parser)]
#[command(name = "procuhelp-server", version, about, long_about)]
pub struct Cli {
    /// Log filter (e.g. `info`, `debug`, `procuhelp_tenancy=debug,info`).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// The named operator running an owner command (docs/operators.md): recorded with the
    /// command in the system chain. Required when PROCUHELP_REQUIRE_OPERATOR=1.
    #[arg(long, global = true, env = "PROCUHELP_OPERATOR", value_name = "NAME")]
    pub operator: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
// Parsed once per process and matched at once: the size of the largest variant (serve's
// flags) costs nothing, and boxing it would only complicate every caller.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTPS (migrations applied and posture checked first on the embedded database).
    Serve(ServeArgs),
    /// Apply migrations and create/update the runtime role (run as the schema owner).
    Migrate(MigrateArgs),
    /// Check the database's isolation posture as the runtime role; exit 1 on any problem.
    Posture(PostureArgs),
    /// Create two demo organisations with a few suppliers each and print their ids.
    SeedDemo(MigrateArgs),
    /// Key management.
    Keys(KeysArgs),
    /// Store a secret (e.g. the runtime database URL) in the vault.
    Secrets(SecretsArgs),
    /// Export or verify an organisation's audit trail.
    Audit(AuditArgs),
    /// Encrypted backups, restores and restore drills (docs/backups.md).
    Backup(BackupArgs),
    /// A data subject's requests: export or erase one person (docs/gdpr.md).
    Gdpr(GdprArgs),
    /// Organisations: create one with its first admin invited.
    Org(OrgArgs),
    /// Purge what the personal-data register says has expired, once (`serve` does it on a
    /// schedule), and record the counts in the audit trail.
    Retention(PurgeArgs),
    /// Operators' credentials (`scrape-token`: a new metrics scrape token).
    Operators(OperatorsArgs),
    /// Checks the deployment from the live system and writes DIR/self-audit.json,
    /// DIR/self-audit.html and DIR/self-audit.md, updating the findings backlog; exits
    /// non-zero when a check fails (docs/self-audit.md).
    SelfAudit(Box<SelfAuditArgs>),
}

/// `self-audit …`
#[derive(Debug, Clone, Args)]
pub struct SelfAuditArgs {
    /// Where the report goes (created 0700 if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The findings backlog to update (default: DIR/backlog.json).
    #[arg(long, value_name = "FILE")]
    pub backlog: Option<PathBuf>,
    /// The backup repository whose newest backup and drill are checked.
    #[arg(long, value_name = "DIR")]
    pub backup_repo: Option<PathBuf>,
    /// The oldest acceptable backup, in hours.
    #[arg(long, default_value_t = 36, value_name = "HOURS")]
    pub backup_max_age_hours: u64,
    /// The oldest acceptable passing restore drill, in hours.
    #[arg(long, default_value_t = 192, value_name = "HOURS")]
    pub drill_max_age_hours: u64,
    /// The oldest acceptable active data key, in days.
    #[arg(long, default_value_t = 365, value_name = "DAYS")]
    pub max_key_age_days: i64,
    /// Grade the headers this served origin answers with (https://host:port); without
    /// it, the code's own layers are graded in process.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The CA certificate(s) for --url (default: the server's own certificate).
    #[arg(long, value_name = "FILE", requires = "url")]
    pub ca_file: Option<PathBuf>,
    /// The checkpoint key(s) published apart from the server (`audit public-key`), as
    /// `audit verify --trusted-key` takes them; without, the deployment's own signer is
    /// trusted and a finding says so.
    #[arg(long = "trusted-key", value_name = "HEX|FILE")]
    pub trusted_keys: Vec<String>,
    /// Where the database is.
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// `operators …`
#[derive(Debug, Clone, Args)]
pub struct OperatorsArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: OperatorsCommand,
}

/// Operator credentials.
#[derive(Debug, Clone, Subcommand)]
pub enum OperatorsCommand {
    /// Writes a new metrics scrape token to FILE (mode 0600, for the scraper's
    /// `credentials_file`) and prints the `metrics_scrapers` entry (its SHA-256) to add to
    /// the operators file. The server never holds the token itself.
    ScrapeToken {
        /// The scraper's name (1–64 characters of a-z 0-9 . _ -).
        #[arg(long)]
        name: String,
        /// Where to write the token (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// `org` subcommands.
#[derive(Debug, Clone, Args)]
pub struct OrgArgs {
    /// Which operation.
    #[command(subcommand)]
    pub command: OrgCommand,
}

/// Operators' organisation commands, recorded in the audit trail.
#[derive(Debug, Clone, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation in this deployment's region and invite its first admin:
    /// prints a single-use token (valid 7 days) with which they set their password
    /// (`POST /api/invitations/accept`). Migrates the embedded database first.
    Create {
        /// The organisation's name.
        #[arg(long)]
        name: String,
        /// The first admin's address.
        #[arg(long)]
        admin_email: String,
        /// The first admin's display name.
        #[arg(long, default_value = "Administrator")]
        admin_name: String,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Offboard an organisation: write its full export (its rows as JSON Lines and its
    /// verifiable audit trail) to a new directory, then delete every row it holds (a
    /// tombstone and an `org.offboarded` event in the system chain stay), then destroy
    /// its keys — after which no earlier backup can restore its rows. Rerun to finish an
    /// interrupted one. Irreversible: `--confirm` repeats the organisation's id.
    Offboard {
        /// The organisation's id.
        #[arg(long)]
        org: String,
        /// The organisation's id again.
        #[arg(long)]
        confirm: String,
        /// A new directory for the customer's export (created 0700; must not exist).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// `retention` arguments.
#[derive(Debug, Clone, Args)]
pub struct PurgeArgs {
    /// Where the database and vault are (the schema owner's connection: only it lists
    /// every organisation).
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// `gdpr` subcommands.
#[derive(Debug, Clone, Args)]
pub struct GdprArgs {
    /// Which request.
    #[command(subcommand)]
    pub command: GdprCommand,
}

/// A data subject's requests, for one person of one organisation, recorded in that
/// organisation's audit trail. On the embedded default no other flag is needed.
#[derive(Debug, Clone, Subcommand)]
pub enum GdprCommand {
    /// Write everything held about the person to one JSON file (manifest, summary, rows,
    /// audit events with personal fields opened).
    Export {
        /// The organisation.
        #[arg(long)]
        org: procuhelp_core::OrgId,
        /// The person's sign-in address.
        #[arg(long)]
        email: String,
        /// Output file (created, mode 0600; never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Erase the person: their account becomes "a former user", their sessions end, their
    /// rows go, their personal data in the audit trail is crypto-shredded.
    Erase {
        /// The organisation.
        #[arg(long)]
        org: procuhelp_core::OrgId,
        /// The person's sign-in address.
        #[arg(long)]
        email: String,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// `backup` subcommands.
#[derive(Debug, Clone, Args)]
pub struct BackupArgs {
    /// Which operation.
    #[command(subcommand)]
    pub command: BackupCommand,
}

/// Backup operations. Each is recorded in the audit trail's system chain. On the embedded
/// default only `--repo` is needed: the data directory defaults as for `serve`.
#[derive(Debug, Clone, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now: `pg_dump` of one snapshot, sealed with AES-256-GCM under a key
    /// the vault wraps, plus the manifest of that snapshot; then apply the retention.
    Run {
        /// The repository.
        #[command(flatten)]
        repo: RepoArgs,
        /// What to keep.
        #[command(flatten)]
        retention: RetentionArgs,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// List the backups (complete and interrupted) and the last drill.
    List {
        /// The repository.
        #[command(flatten)]
        repo: RepoArgs,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Restore the latest (or `--label`) backup into a scratch database, prove it (tables
    /// equal the manifest, migrations, posture, audit chains, keys), drop it; write a
    /// signed report to REPO/drills/. Exit 1 when the drill fails.
    Drill {
        /// The repository.
        #[command(flatten)]
        repo: RepoArgs,
        /// The backup to drill (default: the latest complete one).
        #[arg(long)]
        label: Option<String>,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Restore the latest (or `--label`) backup into a new database. The whole backup is
    /// authenticated first; the database appears under its name only once complete.
    Restore {
        /// The repository.
        #[command(flatten)]
        repo: RepoArgs,
        /// The backup to restore (default: the latest complete one).
        #[arg(long)]
        label: Option<String>,
        /// The database to restore into (default: the live one, which needs --force).
        #[arg(long, value_name = "NAME")]
        into_database: Option<String>,
        /// Replace an existing database (it is kept, renamed `<name>_replaced_<random>`).
        /// Stop the server first.
        #[arg(long)]
        force: bool,
        /// Restore without organisations whose keys were destroyed even when the live
        /// database is gone and cannot confirm they were offboarded.
        #[arg(long)]
        accept_destroyed_keys: bool,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// Where backups go.
#[derive(Debug, Clone, Args)]
pub struct RepoArgs {
    /// The backup repository: a directory on another filesystem than the data directory
    /// (created 0700).
    #[arg(long = "repo", value_name = "DIR")]
    pub repo: PathBuf,
    /// Accept a repository on the data directory's filesystem (never inside it): say so
    /// only when that filesystem is itself replicated elsewhere.
    #[arg(long)]
    pub allow_repo_on_same_filesystem: bool,
    /// With a configured database: a file (0600) holding the URL of a role that row-level
    /// security does not bind (superuser, or BYPASSRLS + pg_read_all_data + CREATEDB),
    /// which backups and restores need; the embedded cluster uses its own superuser.
    #[arg(long, value_name = "FILE")]
    pub backup_database_url_file: Option<PathBuf>,
}

/// The retention policy.
#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// Keep the newest backup of each of this many days.
    #[arg(long, default_value_t = 7, value_name = "N")]
    pub keep_daily: usize,
    /// Keep the newest backup of each of this many weeks.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub keep_weekly: usize,
    /// Keep the newest backup of each of this many months.
    #[arg(long, default_value_t = 12, value_name = "N")]
    pub keep_monthly: usize,
}

impl RetentionArgs {
    /// As a policy.
    pub fn policy(&self) -> procuhelp_tenancy::backup::Retention {
        procuhelp_tenancy::backup::Retention {
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
        }
    }
}

impl Default for RetentionArgs {
    fn default() -> Self {
        let r = procuhelp_tenancy::backup::Retention::default();
        Self {
            keep_daily: r.daily,
            keep_weekly: r.weekly,
            keep_monthly: r.monthly,
        }
    }
}

/// `serve`'s backup schedule.
#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    /// Take backups on a schedule into this repository (see `backup run`). Without it no
    /// backups are taken, and `posture --backup-repo` reports that.
    #[arg(long, value_name = "DIR")]
    pub backup_repo: Option<PathBuf>,
    /// Accept a backup repository on the data directory's filesystem.
    #[arg(long, requires = "backup_repo")]
    pub allow_backup_repo_on_same_filesystem: bool,
    /// Hours between backups.
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    pub backup_every_hours: u64,
    /// Hours between restore drills.
    #[arg(long, default_value_t = 168, value_name = "HOURS")]
    pub drill_every_hours: u64,
    /// What to keep.
    #[command(flatten)]
    pub retention: RetentionArgs,
}

impl Default for ScheduleArgs {
    /// The same values as the command line's defaults: no repository.
    fn default() -> Self {
        Self {
            backup_repo: None,
            allow_backup_repo_on_same_filesystem: false,
            backup_every_hours: 24,
            drill_every_hours: 168,
            retention: RetentionArgs::default(),
        }
    }
}

/// Arguments of `posture`.
#[derive(Debug, Clone, Args)]
pub struct PostureArgs {
    /// Where the database is.
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Also fail when this repository's last backup or last passing drill is overdue.
    #[arg(long, value_name = "DIR")]
    pub backup_repo: Option<PathBuf>,
    /// The oldest acceptable last backup, in hours.
    #[arg(long, default_value_t = 36, value_name = "HOURS")]
    pub backup_max_age_hours: u64,
    /// The oldest acceptable last passing drill, in hours.
    #[arg(long, default_value_t = 252, value_name = "HOURS")]
    pub drill_max_age_hours: u64,
    /// Also fail when this security.txt configuration is invalid or expired, and warn
    /// 30 days before it expires.
    #[arg(long, value_name = "FILE")]
    pub security_txt: Option<PathBuf>,
}

/// `audit` subcommands.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Which operation.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// Audit trail operations.
#[derive(Debug, Clone, Subcommand)]
pub enum AuditCommand {
    /// Write an organisation's events and signed checkpoints to a file (recorded as an
    /// export event).
    Export {
        /// The organisation.
        #[arg(long)]
        org: procuhelp_core::OrgId,
        /// Output file (created, mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// `jsonl` (verifiable) or `csv`.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// GDPR erasure of one person's personal data in the audit trail: destroys their key,
    /// so their events stay (pseudonymous) and the chain and signatures still verify.
    Erase {
        /// The organisation.
        #[arg(long)]
        org: procuhelp_core::OrgId,
        /// The person's subject id (their user id).
        #[arg(long)]
        subject: String,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Append the events of a JSON-lines file (the file sink's format, one organisation)
    /// to that organisation's chain, all in one transaction with an `audit.imported` event
    /// naming the file's SHA-256. A bad line (named by number), a future date or a file
    /// imported before means nothing is appended; personal data of persons erased since
    /// is left out.
    Import {
        /// The organisation every event must belong to.
        #[arg(long)]
        org: procuhelp_core::OrgId,
        /// The JSON-lines file.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Verify a chain: live in the database (`--org`), or offline in an export (`--file`),
    /// against the deployment's published checkpoint key(s) given with `--trusted-key`.
    /// Exit 1 and name the first bad sequence number on any tampering.
    Verify {
        /// Verify this organisation's live chain.
        #[arg(long, conflicts_with = "file", required_unless_present = "file")]
        org: Option<procuhelp_core::OrgId>,
        /// Verify this export file (no database needed).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// A public key to trust for checkpoints: 64 hex digits, or a file holding them
        /// (as printed by `audit public-key`; repeat for older keys). Required: keys found
        /// in the file or the database prove nothing to someone checking for forgery.
        #[arg(long = "trusted-key", value_name = "HEX|FILE")]
        trusted_keys: Vec<String>,
        /// Trust whatever keys the checkpoints name. A re-hashed, re-signed forgery
        /// passes: this checks only internal consistency.
        #[arg(long, conflicts_with = "trusted_keys")]
        dangerously_trust_embedded_keys: bool,
        /// Where the database and vault are (for `--org`).
        #[command(flatten)]
        db: DatabaseArgs,
    },
    /// Print the public key(s) that sign this deployment's checkpoints, one hex line
    /// each: publish them where verifiers can pin them (`audit verify --trusted-key`).
    PublicKey {
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// `secrets` subcommands.
#[derive(Debug, Clone, Args)]
pub struct SecretsArgs {
    /// Which operation.
    #[command(subcommand)]
    pub command: SecretsCommand,
}

/// Secret operations.
#[derive(Debug, Clone, Subcommand)]
pub enum SecretsCommand {
    /// Store the content of a file (mode 0600) as a new version of secret NAME.
    Put {
        /// Secret name, e.g. `db/runtime-url`.
        name: String,
        /// File holding the value (delete it afterwards).
        #[arg(long, value_name = "FILE")]
        from_file: PathBuf,
        /// Where the vault is.
        #[command(flatten)]
        db: DatabaseArgs,
    },
}

/// `keys` subcommands.
#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    /// Which key operation.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Key operations (run as the schema owner).
#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Rotate every organisation's KEK (re-wrapping its data keys) and data key, then
    /// re-encrypt stored fields under the new data key in batches and retire the old one.
    /// Safe to interrupt and re-run.
    Rotate {
        /// Where the database and vault are.
        #[command(flatten)]
        db: DatabaseArgs,
        /// Rows per re-encryption batch (one transaction each).
        #[arg(long, default_value_t = 500)]
        batch: i64,
    },
}

/// Where the database is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Data directory: TLS certificate, embedded database.
    #[arg(long, default_value = "data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// File holding the PostgreSQL URL to use instead of the embedded database. For
    /// `serve` and `posture`: a URL of the runtime role; for `migrate`/`seed-demo`: of the
    /// schema owner. Read from a file so that passwords stay out of argv and the
    /// environment.
    #[arg(long, value_name = "FILE", conflicts_with = "database_url_secret")]
    pub database_url_file: Option<PathBuf>,

    /// Name of a vault secret holding the PostgreSQL URL to use instead of the embedded
    /// database. `serve` reads its credentials only from the vault: store the URL with
    /// `procuhelp-server secrets put db/runtime-url --from-file FILE`.
    #[arg(long, value_name = "NAME")]
    pub database_url_secret: Option<String>,

    /// Directory holding initdb/pg_ctl/postgres for the embedded database (default: the
    /// newest /usr/lib/postgresql/*/bin, then PATH).
    #[arg(long, value_name = "DIR")]
    pub pg_bin_dir: Option<PathBuf>,

    /// DANGEROUS: reach a configured database on a non-loopback host without verified TLS.
    /// Without it, such a URL must say `sslmode=verify-full` (with `sslrootcert=FILE` for a
    /// private CA); Unix sockets and loopback addresses never need TLS.
    #[arg(long)]
    pub dangerous_database_without_verified_tls: bool,

    /// The deployment's data residency, as JSON: the region it serves and where its
    /// database, backups, vault and subprocessors are (docs/gdpr.md). Default: the
    /// built-in EU configuration (`examples/server/residency.json`).
    #[arg(long, value_name = "FILE")]
    pub residency: Option<PathBuf>,

    /// Where secrets and key-encryption keys live.
    #[command(flatten)]
    pub vault: VaultArgs,
}

/// The secret provider: the embedded vault in `<data-dir>/vault` unless OpenBao is given.
#[derive(Debug, Clone, Default, Args)]
pub struct VaultArgs {
    /// OpenBao / Vault address (e.g. `https://vault.internal:8200`). Without it, the embedded
    /// vault in `DATA_DIR/vault` is used (master key file generated on first run, 0600).
    #[arg(long, value_name = "URL")]
    pub openbao_addr: Option<String>,
    /// File with an OpenBao token.
    #[arg(long, value_name = "FILE", requires = "openbao_addr")]
    pub openbao_token_file: Option<PathBuf>,
    /// File with an AppRole role_id (with --openbao-secret-id-file).
    #[arg(long, value_name = "FILE", requires_all = ["openbao_addr", "openbao_secret_id_file"])]
    pub openbao_role_id_file: Option<PathBuf>,
    /// File with an AppRole secret_id.
    #[arg(long, value_name = "FILE", requires = "openbao_role_id_file")]
    pub openbao_secret_id_file: Option<PathBuf>,
    /// PEM file of the CA that signed OpenBao's certificate.
    #[arg(long, value_name = "FILE", requires = "openbao_addr")]
    pub openbao_ca_file: Option<PathBuf>,
    /// Sign audit checkpoints with this OpenBao Transit key (type ed25519,
    /// exportable=false, created by the administrator): the server never holds it.
    #[arg(long, value_name = "NAME", requires_all = ["openbao_addr", "audit_transit_token_file"])]
    pub audit_transit_key: Option<String>,
    /// File with an OpenBao token allowed only to sign with (and read) that key.
    #[arg(long, value_name = "FILE", requires = "audit_transit_key")]
    pub audit_transit_token_file: Option<PathBuf>,
    /// Without Transit: the audit checkpoint signing key's file (PKCS#8, 0600, created on
    /// first use), kept apart from the vault. Default `DATA_DIR/audit-signing/checkpoint.key`.
    #[arg(long, value_name = "FILE", conflicts_with = "audit_transit_key")]
    pub audit_signing_key_file: Option<PathBuf>,
}

/// Arguments of `migrate` and `seed-demo`.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Where the database is.
    #[command(flatten)]
    pub db: DatabaseArgs,

    /// Name of the runtime role to create or update.
    #[arg(long, default_value = procuhelp_tenancy::RuntimeRole::DEFAULT_NAME, value_name = "ROLE")]
    pub runtime_role: String,
}

/// Arguments of `serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where the database is.
    #[command(flatten)]
    pub db: DatabaseArgs,

    /// HTTPS listen address.
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR")]
    pub https_addr: SocketAddr,

    /// DANGEROUS, tests only: let the server's outbound fetches (OIDC discovery, keys and
    /// token endpoint a tenant configured; the alert webhook) reach loopback addresses,
    /// over plain http too. Without it, only public addresses are fetched (checked after
    /// DNS resolution). With it, a tenant admin can make the server call every service on
    /// this machine.
    #[arg(long)]
    pub dangerous_allow_loopback_fetch: bool,

    /// Optional plain-HTTP listen address; it only redirects to HTTPS.
    #[arg(long, value_name = "ADDR")]
    pub http_redirect_addr: Option<SocketAddr>,

    /// Host name used in redirects and the generated certificate (default: the HTTPS
    /// address's IP). Never taken from the request's Host header.
    #[arg(long, value_name = "HOST")]
    pub public_host: Option<String>,

    /// Maximum request body in bytes.
    #[arg(long, default_value_t = 1024 * 1024, value_name = "BYTES")]
    pub max_body_bytes: usize,

    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub request_timeout_secs: u64,

    /// Alert thresholds and an optional webhook, as JSON (see `docs/audit.md`; default:
    /// the documented thresholds, alerts to the log only).
    #[arg(long, value_name = "FILE")]
    pub alerts: Option<PathBuf>,

    /// Connection limits and the load balancers in front.
    #[command(flatten)]
    pub network: NetworkArgs,

    /// Backups on a schedule.
    #[command(flatten)]
    pub backups: ScheduleArgs,

    /// Hours between runs of the retention purge (what the personal-data register says
    /// has expired: sessions, sign-in throttles, SSO requests and replay rows, tokens).
    #[arg(long, default_value_t = 24, value_name = "HOURS")]
    pub retention_every_hours: u64,

    /// The deployment's operators (JSON: `{"operators": [{"name", "public_key"}]}`, Ed25519
    /// public keys in hex): serves the operator API (`POST /operator/organisations`),
    /// which needs the schema owner's connection (docs/operators.md). Without it the
    /// operator API does not exist.
    #[arg(long, value_name = "FILE")]
    pub operators: Option<PathBuf>,

    /// The deployment's `/.well-known/security.txt` (RFC 9116), as JSON: `{"contact":
    /// ["mailto:…"], "expires": "<RFC 3339>", "policy", "preferred_languages",
    /// "canonical", "acknowledgments"}`. Refused when expired or expiring more than a
    /// year ahead; not served once expired (SECURITY.md).
    #[arg(long, value_name = "FILE")]
    pub security_txt: Option<PathBuf>,
    /// Stream every audit event to NATS JetStream as this JSON file says
    /// (`docs/observability.md`): `{"url": "nats://127.0.0.1:4222"}` at least.
    #[arg(long, value_name = "FILE")]
    pub audit_stream: Option<PathBuf>,
    /// Send invitation links by SMTP as this JSON file says (`docs/pages.md`):
    /// `{"host", "port", "from", "tls": "none"|"starttls"|"tls", "ca_file", "username",
    /// "password_file"}`. Without it, messages are written to `<data-dir>/outbox`.
    #[arg(long, value_name = "FILE")]
    pub smtp: Option<PathBuf>,
    /// Export the request spans over OTLP (`docs/observability.md`).
    #[command(flatten)]
    pub otlp: OtlpArgs,
}

/// Optional OTLP/HTTP export of traces: one span per request (route template, method,
/// status, request id, verified organisation; never paths as sent, queries, headers,
/// cookies or bodies).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OtlpArgs {
    /// The collector's traces endpoint, whole (`http://127.0.0.1:4318/v1/traces`): plain
    /// http only to this machine; `https://` needs `--otlp-ca-file`.
    #[arg(long, value_name = "URL")]
    pub otlp_traces: Option<String>,
    /// The CA that signed the collector's certificate (no built-in roots).
    #[arg(long, value_name = "FILE", requires = "otlp_traces")]
    pub otlp_ca_file: Option<PathBuf>,
}

/// Connection limits (see `docs/hardening.md`) and trusted proxies.
#[derive(Debug, Clone, Args)]
pub struct NetworkArgs {
    /// A load balancer or reverse proxy (address or range, e.g. `10.0.0.0/8`) whose
    /// `X-Forwarded-For` is believed: for requests from it, the client's address is the
    /// right-most entry that is not itself a trusted proxy. Repeatable. Without any,
    /// forwarded headers are ignored and the TCP peer is the client.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<procuhelp_axum::client_addr::Cidr>,

    /// Seconds a client has to complete its TLS handshake.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub tls_handshake_timeout_secs: u64,

    /// Seconds a client has to send a request's headers (and that an HTTP/1 keep-alive
    /// connection may wait for its next request).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub header_read_timeout_secs: u64,

    /// Seconds after which a connection with no traffic either way is closed; must exceed
    /// the request timeout.
    #[arg(long, default_value_t = 60, value_name = "SECS")]
    pub idle_timeout_secs: u64,

    /// Connections served at once; beyond it a new connection waits up to a second for a
    /// slot, then is closed.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    pub max_connections: usize,
}

impl Default for NetworkArgs {
    /// The same values as the command line's defaults.
    fn default() -> Self {
        let limits = crate::connections::ConnectionLimits::default();
        Self {
            trusted_proxies: Vec::new(),
            tls_handshake_timeout_secs: limits.tls_handshake_timeout.as_secs(),
            header_read_timeout_secs: limits.header_read_timeout.as_secs(),
            idle_timeout_secs: limits.idle_timeout.as_secs(),
            max_connections: limits.max_connections,
        }
    }
}

impl Command {
    /// Where to export traces, for `serve` with `--otlp-traces`.
    pub fn otlp(&self) -> Option<&OtlpArgs> {
        match self {
            Command::Serve(a) if a.otlp.otlp_traces.is_some() => Some(&a.otlp),
            _ => None,
        }
    }

    /// For a command that changes the deployment with the owner's rights, its name (as
    /// recorded) and where its database is; `None` for serving and read-only commands.
    pub fn owner_command(&self) -> Option<(&'static str, &DatabaseArgs)> {
        match self {
            Command::Migrate(a) => Some(("migrate", &a.db)),
            Command::SeedDemo(a) => Some(("seed-demo", &a.db)),
            Command::Keys(KeysArgs {
                command: KeysCommand::Rotate { db, .. },
            }) => Some(("keys rotate", db)),
            Command::Secrets(SecretsArgs {
                command: SecretsCommand::Put { db, .. },
            }) => Some(("secrets put", db)),
            Command::Audit(AuditArgs { command }) => match command {
                AuditCommand::Erase { db, .. } => Some(("audit erase", db)),
                AuditCommand::Import { db, .. } => Some(("audit import", db)),
                _ => None,
            },
            Command::Backup(BackupArgs { command }) => match command {
                BackupCommand::Run { db, .. } => Some(("backup run", db)),
                BackupCommand::Drill { db, .. } => Some(("backup drill", db)),
                BackupCommand::Restore { db, .. } => Some(("backup restore", db)),
                BackupCommand::List { .. } => None,
            },
            Command::Gdpr(GdprArgs { command }) => match command {
                GdprCommand::Export { db, .. } => Some(("gdpr export", db)),
                GdprCommand::Erase { db, .. } => Some(("gdpr erase", db)),
            },
            Command::Org(OrgArgs { command }) => match command {
                OrgCommand::Create { db, .. } => Some(("org create", db)),
                OrgCommand::Offboard { db, .. } => Some(("org offboard", db)),
            },
            Command::Retention(a) => Some(("retention", &a.db)),
            Command::Serve(_)
            | Command::Posture(_)
            | Command::Operators(_)
            | Command::SelfAudit(_) => None,
        }
    }
}
