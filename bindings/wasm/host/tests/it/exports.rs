#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The module's interface is exactly ABI.md's, and the loader refuses any
//! module whose interface is not.

use prodguard_wasmtime::{
    AbiVersion, Error, EvaluateRequest, ProdguardInstance, ProdguardModule, Verdict,
};
use wasmtime::{Engine, ExternType, Module, ValType};

use crate::common::{Fake, Raw, body, fake_abi, fake_abi_on, module, module_bytes, module_path};

/// The exports table of ABI.md: name → (parameters, results), all i32.
const DOCUMENTED: [(&str, usize, usize); 6] = [
    ("prodguard_abi_version", 0, 1),
    ("prodguard_alloc", 1, 1),
    ("prodguard_dealloc", 2, 0),
    ("prodguard_evaluate", 3, 1),
    ("prodguard_audit_record", 3, 1),
    ("prodguard_verify_approval", 3, 1),
];

#[test]
fn exports_are_exactly_the_documented_set_and_nothing_is_imported() {
    // Looked at with plain wasmtime, independently of the crate's own checks.
    let engine = Engine::default();
    let wasm = Module::new(&engine, module_bytes()).unwrap();

    let imports: Vec<String> = wasm
        .imports()
        .map(|i| format!("{}.{}", i.module(), i.name()))
        .collect();
    assert!(
        imports.is_empty(),
        "{} imports {imports:?}",
        module_path().display()
    );
    assert!(!imports.iter().any(|i| i.starts_with("env.")));

    let mut names: Vec<String> = Vec::new();
    for export in wasm.exports() {
        names.push(export.name().to_owned());
        match export.ty() {
            ExternType::Memory(memory) => {
                assert_eq!(
                    export.name(),
                    "memory",
                    "a memory exported under another name"
                );
                assert!(!memory.is_64(), "memory must be 32-bit");
            }
            ExternType::Func(func) => {
                let (_, params, results) = DOCUMENTED
                    .iter()
                    .find(|(name, _, _)| *name == export.name())
                    .unwrap_or_else(|| panic!("undocumented export `{}`", export.name()));
                let i32s = |types: Vec<ValType>| types.iter().all(|t| matches!(t, ValType::I32));
                assert_eq!(func.params().len(), *params, "{}", export.name());
                assert_eq!(func.results().len(), *results, "{}", export.name());
                assert!(
                    i32s(func.params().collect()) && i32s(func.results().collect()),
                    "{}: only i32 crosses the boundary, got {func}",
                    export.name()
                );
            }
            other => panic!("export `{}` is a {other:?}", export.name()),
        }
    }
    names.sort();
    let mut documented: Vec<String> = DOCUMENTED.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    documented.push("memory".into());
    documented.sort();
    assert_eq!(names, documented);

    let mut crate_list: Vec<&str> = prodguard_wasmtime::EXPORTS.to_vec();
    crate_list.sort_unstable();
    assert_eq!(crate_list, documented);
}

#[test]
fn the_abi_version_is_2_4() {
    assert_eq!(Raw::new().abi_version(), 0x0002_0004);
    assert_eq!(module().abi_version(), AbiVersion { major: 2, minor: 4 });
}

fn refused(bytes: &[u8]) -> Error {
    ProdguardModule::from_bytes(bytes).expect_err("the module should be refused")
}

#[test]
fn a_module_that_imports_anything_is_refused() {
    let bytes = fake_abi_on(
        Fake::default().import("env", "abort"),
        0x0002_0000,
        &body::constant(0),
    )
    .finish();
    let error = refused(&bytes);
    assert!(
        matches!(&error, Error::UnexpectedImport { module, name } if module == "env" && name == "abort"),
        "{error:?}"
    );
    assert!(error.to_string().contains("imports nothing"), "{error}");

    let bytes = with_host_import();
    assert!(matches!(refused(&bytes), Error::UnexpectedImport { .. }));
}

fn with_host_import() -> Vec<u8> {
    // Even the namespace ABI.md reserves for future host functions is
    // refused by a host written for ABI 2.0, which has none.
    fake_abi_on(
        Fake::default().import("prodguard:host/v1", "now"),
        0x0002_0000,
        &body::constant(0),
    )
    .finish()
}

#[test]
fn a_module_with_other_exports_is_refused() {
    let good = fake_abi(0x0002_0000, &body::constant(0));
    assert!(
        ProdguardModule::from_bytes(&good.finish()).is_ok(),
        "the fake itself is fine"
    );

    let extra = fake_abi(0x0002_0000, &body::constant(0))
        .func("debug_dump", 0, 0, &[])
        .finish();
    let error = refused(&extra);
    assert!(
        matches!(&error, Error::Exports { problem } if problem.contains("debug_dump")),
        "{error}"
    );

    let missing = Fake::default()
        .memory(1)
        .func("prodguard_abi_version", 0, 1, &body::constant(0x0002_0000))
        .func("prodguard_alloc", 1, 1, &body::constant(1024))
        .func("prodguard_dealloc", 2, 0, &[])
        .func("prodguard_evaluate", 3, 1, &body::constant(0))
        .func("prodguard_audit_record", 3, 1, &body::constant(0))
        .finish();
    let error = refused(&missing);
    assert!(
        matches!(&error, Error::Exports { problem } if problem.contains("prodguard_verify_approval")),
        "{error}"
    );

    let wrong_type = Fake::default()
        .memory(1)
        .func("prodguard_abi_version", 0, 1, &body::constant(0x0002_0000))
        .func("prodguard_alloc", 1, 1, &body::constant(1024))
        .func("prodguard_dealloc", 2, 0, &[])
        .func("prodguard_evaluate", 2, 1, &body::constant(0))
        .func("prodguard_audit_record", 3, 1, &body::constant(0))
        .func("prodguard_verify_approval", 3, 1, &body::constant(0))
        .finish();
    let error = refused(&wrong_type);
    assert!(
        matches!(&error, Error::Exports { problem } if problem.contains("prodguard_evaluate")),
        "{error}"
    );
}

#[test]
fn only_abi_major_2_is_accepted() {
    let error = refused(&fake_abi(0x0003_0000, &body::constant(0)).finish());
    assert!(
        matches!(
            error,
            Error::AbiVersion {
                major: 3,
                minor: 0,
                supported: 2
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("ABI 3.0"), "{error}");
    let error = refused(&fake_abi(0, &body::constant(0)).finish());
    assert!(
        matches!(error, Error::AbiVersion { major: 0, .. }),
        "{error:?}"
    );

    // A higher minor only adds things: a 2.x host uses it.
    let newer =
        ProdguardModule::from_bytes(&fake_abi(0x0002_0007, &body::constant(0)).finish()).unwrap();
    assert_eq!(newer.abi_version(), AbiVersion { major: 2, minor: 7 });
}

#[test]
fn what_is_not_a_module_is_refused_with_what_to_do() {
    assert!(matches!(refused(b"not wasm at all"), Error::Compile { .. }));
    let error = ProdguardModule::from_file("/nonexistent/prodguard.wasm").unwrap_err();
    assert!(matches!(error, Error::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("scripts/build-wasm"), "{error}");
}

#[test]
fn the_module_is_shared_across_threads_and_instances_move() {
    fn send_sync<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    send_sync::<ProdguardModule>();
    send::<ProdguardInstance>();
    send::<Error>();

    let threads: Vec<_> = (0..2)
        .map(|n| {
            let module = module().clone();
            std::thread::spawn(move || {
                let mut instance = module.instantiate().unwrap();
                let request = EvaluateRequest::new("db.migrate").target(format!("orders{n}"));
                instance.evaluate(&request).unwrap().decision.result
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), Verdict::Require);
    }
}
