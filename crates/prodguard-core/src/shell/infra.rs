//! Infrastructure: Terraform and OpenTofu, kubectl and helm, the AWS and
//! Google Cloud command lines.

use super::Recognized;
use super::args::{Opts, Spec, head, literals};
use super::lex::Word;
use super::recognize::Cmd;
use super::target::Field;

pub(super) fn terraform(cmd: &Cmd<'_>) -> Option<Recognized> {
    let args = cmd.args();
    let at = args.iter().position(|w| !head(w).starts_with('-'))?;
    let sub = args.get(at)?.literal()?;
    let rest = args.get(at + 1..).unwrap_or_default();
    let flag = |names: &[&str]| {
        rest.iter().any(|w| {
            let t = head(w);
            names.iter().any(|n| {
                t == *n
                    || t == format!("-{n}")
                    || t == format!("{n}=true")
                    || t == format!("-{n}=true")
            })
        })
    };
    if flag(&["-help", "-h"]) {
        return None;
    }
    let destroys = match sub {
        "destroy" => true,
        "apply" => flag(&["-destroy"]),
        _ => false,
    };
    if !destroys {
        return None;
    }
    let targets = match cmd.env("TF_WORKSPACE") {
        Field::Known(ws) if !ws.is_empty() => vec![format!("terraform:{ws}")],
        Field::Unknown => Vec::new(),
        _ => vec!["terraform:default".to_owned()],
    };
    Some(cmd.found("infra.destroy", targets, None))
}

/// `kube:CONTEXT[/NAMESPACE]`, or nothing when the context is unknown.
fn kube_target(
    cmd: &Cmd<'_>,
    context: Option<&Word>,
    context_env: &[&str],
    namespace: Field,
) -> Vec<String> {
    let context = match context {
        Some(w) => cmd.field(w),
        None => context_env
            .iter()
            .map(|name| cmd.env(name))
            .find(|f| *f != Field::Unset)
            .unwrap_or(Field::Unset),
    };
    let Field::Known(context) = context else {
        return Vec::new();
    };
    match namespace {
        Field::Known(ns) if !ns.is_empty() => vec![format!("kube:{context}/{ns}")],
        _ => vec![format!("kube:{context}")],
    }
}

const KUBE_CONTEXT_ENV: [&str; 3] = ["KUBECONTEXT", "KUBE_CONTEXT", "KUBECTL_CONTEXT"];

/// kubectl's short options that take a value (global, `delete`'s, `exec`'s).
pub(super) const KUBECTL_SHORT: &str = "nlfosvc";

/// kubectl's long options that take a value (global, `delete`'s, `exec`'s):
/// one list for every reading of a kubectl command line.
pub(super) const KUBECTL_LONG: &[&str] = &[
    "context",
    "namespace",
    "kubeconfig",
    "cluster",
    "user",
    "server",
    "token",
    "as",
    "as-group",
    "as-uid",
    "cache-dir",
    "certificate-authority",
    "client-certificate",
    "client-key",
    "request-timeout",
    "tls-server-name",
    "profile",
    "profile-output",
    "v",
    "vmodule",
    "log-file",
    "log-dir",
    "selector",
    "filename",
    "output",
    "field-selector",
    "grace-period",
    "timeout",
    "template",
    "username",
    "password",
    "container",
    "pod-running-timeout",
];

pub(super) fn kubectl(cmd: &Cmd<'_>) -> Option<Recognized> {
    const KUBECTL: Spec = Spec {
        short: KUBECTL_SHORT,
        attached_short: "",
        long: KUBECTL_LONG,
        stop_at_operand: false,
    };
    let opts = cmd.opts(&KUBECTL);
    if opts.operands.first()?.literal()? != "delete" || dry_run(&opts) {
        return None;
    }
    let namespace = opts
        .last(&["n", "namespace"])
        .map_or(Field::Unset, |w| cmd.field(w));
    let targets = kube_target(cmd, opts.last(&["context"]), &KUBE_CONTEXT_ENV, namespace);
    Some(cmd.found("infra.delete", targets, None))
}

/// `--dry-run` (or `--dry-run=client|server`): nothing is changed.
fn dry_run(opts: &Opts) -> bool {
    opts.opts
        .iter()
        .filter(|(n, _)| n == "dry-run")
        .any(|(_, v)| v.as_ref().and_then(Word::literal) != Some("none"))
}

pub(super) fn helm(cmd: &Cmd<'_>) -> Option<Recognized> {
    const HELM: Spec = Spec {
        short: "n",
        attached_short: "",
        long: &[
            "kube-context",
            "namespace",
            "kubeconfig",
            "burst-limit",
            "kube-apiserver",
            "kube-as-user",
            "kube-as-group",
            "kube-ca-file",
            "kube-token",
            "kube-tls-server-name",
            "registry-config",
            "repository-cache",
            "repository-config",
            "timeout",
            "cascade",
            "description",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&HELM);
    let sub = opts.operands.first()?.literal()?;
    if !matches!(sub, "uninstall" | "delete" | "del" | "un") || opts.has(&["dry-run"]) {
        return None;
    }
    let namespace = match opts.last(&["n", "namespace"]) {
        Some(w) => cmd.field(w),
        None => cmd.env("HELM_NAMESPACE"),
    };
    let mut context_env = vec!["HELM_KUBECONTEXT"];
    context_env.extend(KUBE_CONTEXT_ENV);
    let targets = kube_target(cmd, opts.last(&["kube-context"]), &context_env, namespace);
    Some(cmd.found("infra.delete", targets, None))
}

pub(super) fn aws(cmd: &Cmd<'_>) -> Option<Recognized> {
    const AWS: Spec = Spec {
        short: "",
        attached_short: "",
        long: &[
            "profile",
            "region",
            "endpoint-url",
            "output",
            "query",
            "cli-read-timeout",
            "cli-connect-timeout",
            "ca-bundle",
            "color",
            "cli-binary-format",
            "include",
            "exclude",
            "request-payer",
            "expected-bucket-owner",
            "page-size",
            "db-instance-identifier",
            "db-cluster-identifier",
            "final-db-snapshot-identifier",
            "final-snapshot-identifier",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&AWS);
    let ops: Vec<&Word> = opts.operands.iter().collect();
    let names = literals(&ops);
    let s3_target = || -> Vec<String> {
        ops.iter()
            .skip(2)
            .filter_map(|w| cmd.value(w))
            .find(|v| v.starts_with("s3://"))
            .into_iter()
            .collect()
    };
    match names.as_slice() {
        ["s3", "rm", ..] if opts.has(&["recursive"]) && !opts.has(&["dryrun"]) => {
            Some(cmd.found("storage.delete.recursive", s3_target(), None))
        }
        ["s3", "rb", ..] if opts.has(&["force"]) && !opts.has(&["dryrun"]) => {
            Some(cmd.found("storage.delete.recursive", s3_target(), None))
        }
        ["rds", op @ ("delete-db-instance" | "delete-db-cluster"), ..] => {
            let option = if *op == "delete-db-instance" {
                "db-instance-identifier"
            } else {
                "db-cluster-identifier"
            };
            let targets = opts
                .last(&[option])
                .and_then(|w| cmd.value(w))
                .map(|id| format!("aws-rds:{id}"))
                .into_iter()
                .collect();
            Some(cmd.found("infra.destroy", targets, None))
        }
        _ => None,
    }
}

pub(super) fn gcloud(cmd: &Cmd<'_>) -> Option<Recognized> {
    const GCLOUD: Spec = Spec {
        short: "",
        attached_short: "",
        long: &[
            "project",
            "account",
            "configuration",
            "format",
            "verbosity",
            "impersonate-service-account",
            "billing-project",
            "flags-file",
            "trace-token",
        ],
        stop_at_operand: false,
    };
    let opts = cmd.opts(&GCLOUD);
    let ops: Vec<&Word> = opts
        .operands
        .iter()
        .skip_while(|w| matches!(w.literal(), Some("alpha" | "beta")))
        .collect();
    if literals(&ops).get(..3) != Some(&["sql", "instances", "delete"][..]) {
        return None;
    }
    let targets = ops
        .iter()
        .skip(3)
        .filter_map(|w| cmd.value(w))
        .map(|id| format!("gcp-sql:{id}"))
        .collect();
    Some(cmd.found("infra.destroy", targets, None))
}
