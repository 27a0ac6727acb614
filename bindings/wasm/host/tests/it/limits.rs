#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! A bad or malicious module cannot hang or exhaust the host: fuel stops
//! it, the memory cap bounds it, and a trap is an error after which the
//! instance is fresh again.

use prodguard_wasmtime::{
    DEFAULT_FUEL_PER_CALL, Error, EvaluateRequest, Export, Limits, ProdguardInstance,
    ProdguardModule, Verdict,
};

use crate::common::{body, fake_abi, instance, module};

fn works(instance: &mut ProdguardInstance) {
    let evaluation = instance
        .evaluate(&EvaluateRequest::new("db.migrate").target("orders"))
        .unwrap();
    assert_eq!(evaluation.decision.result, Verdict::Require);
}

fn fake(evaluate: &[u8]) -> ProdguardInstance {
    ProdguardModule::from_bytes(&fake_abi(0x0002_0000, evaluate).finish())
        .unwrap()
        .instantiate()
        .unwrap()
}

#[test]
fn a_tiny_fuel_budget_fails_the_call_and_the_next_call_works() {
    let mut instance = instance();
    assert_eq!(instance.fuel_per_call(), DEFAULT_FUEL_PER_CALL);
    works(&mut instance);
    let typical = instance.fuel_used();
    assert!(
        typical > 0 && typical < DEFAULT_FUEL_PER_CALL / 100,
        "a call used {typical}"
    );

    for tiny in [0, 1, 1_000, typical / 2] {
        instance.set_fuel_per_call(tiny);
        let error = instance
            .evaluate(&EvaluateRequest::new("db.migrate").target("orders"))
            .unwrap_err();
        assert!(
            matches!(error, Error::FuelExhausted { fuel, .. } if fuel == tiny),
            "{error:?}"
        );
        assert!(error.to_string().contains("fuel"), "{error}");
    }
    assert_eq!(instance.replacements(), 4);

    instance.set_fuel_per_call(DEFAULT_FUEL_PER_CALL);
    works(&mut instance);
    assert_eq!(instance.replacements(), 4, "a good call replaces nothing");

    // Limits set on the module apply to its new instances.
    let mut starved = module()
        .clone()
        .with_limits(Limits::default().with_fuel_per_call(10))
        .instantiate()
        .unwrap();
    assert!(matches!(
        starved.call_json(Export::Evaluate, "{}"),
        Err(Error::FuelExhausted { .. })
    ));
}

#[test]
fn a_module_that_loops_forever_is_stopped_by_fuel() {
    let mut looping = fake(&body::spin());
    looping.set_fuel_per_call(50_000_000);
    let started = std::time::Instant::now();
    let error = looping.call_json(Export::Evaluate, "{}").unwrap_err();
    assert!(
        matches!(
            error,
            Error::FuelExhausted {
                export: "prodguard_evaluate",
                fuel: 50_000_000
            }
        ),
        "{error:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(looping.replacements(), 1);
}

#[test]
fn the_memory_cap_holds() {
    // A module that grows its memory until it cannot, then traps.
    let mut greedy =
        ProdguardModule::from_bytes(&fake_abi(0x0002_0000, &body::grow_forever()).finish())
            .unwrap()
            .with_limits(Limits::default().with_max_memory_bytes(4 << 20))
            .instantiate()
            .unwrap();
    let error = greedy.call_json(Export::Evaluate, "{}").unwrap_err();
    assert!(
        matches!(error, Error::MemoryLimit { limit, .. } if limit == 4 << 20),
        "{error:?}"
    );
    assert!(greedy.memory_bytes() <= 4 << 20);
    assert_eq!(greedy.replacements(), 1);

    // The real module under a small cap: a request too big for it fails
    // cleanly, and the next (small) one works.
    let mut capped = module()
        .clone()
        .with_limits(Limits::default().with_max_memory_bytes(3 << 20))
        .instantiate()
        .unwrap();
    works(&mut capped);
    let big = EvaluateRequest::new("db.migrate").target("t".repeat(4 << 20));
    let error = capped.evaluate(&big).unwrap_err();
    assert!(
        matches!(error, Error::MemoryLimit { limit, .. } if limit == 3 << 20),
        "{error:?}"
    );
    assert!(capped.memory_bytes() <= 3 << 20);
    works(&mut capped);

    // A cap below the module's initial memory: instantiation says so.
    let error = module()
        .clone()
        .with_limits(Limits::default().with_max_memory_bytes(64 << 10))
        .instantiate()
        .unwrap_err();
    assert!(matches!(error, Error::Instantiate { .. }), "{error:?}");
}

#[test]
fn a_trap_is_an_error_and_the_instance_is_replaced() {
    let mut trapping = fake(&body::trap());
    for n in 1..=3 {
        let error = trapping.call_json(Export::Evaluate, "{}").unwrap_err();
        assert!(
            matches!(
                error,
                Error::Trap {
                    export: "prodguard_evaluate",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains("bug in prodguard"), "{error}");
        assert_eq!(trapping.replacements(), n);
    }
    // The other exports of the same instance still answer.
    let (status, answer) = trapping.call_json(Export::AuditRecord, "{}").unwrap();
    assert_eq!((status, answer.as_str()), (125, ""));
}

#[test]
fn an_answer_that_breaks_the_abi_is_an_error_not_a_crash() {
    // (ptr, len) outside memory.
    let mut outside = fake(&body::answer(0xffff_fff0, 100, 0));
    let error = outside.call_json(Export::Evaluate, "{}").unwrap_err();
    assert!(matches!(error, Error::AbiViolation { .. }), "{error:?}");
    assert_eq!(outside.replacements(), 1);

    // An answer that is not UTF-8, and one that is not the documented JSON.
    let not_utf8 = fake_abi(0x0002_0000, &body::answer(2048, 2, 0))
        .data(2048, b"\xff\xfe")
        .finish();
    let mut not_utf8 = ProdguardModule::from_bytes(&not_utf8)
        .unwrap()
        .instantiate()
        .unwrap();
    assert!(matches!(
        not_utf8.call_json(Export::Evaluate, "{}"),
        Err(Error::AbiViolation { .. })
    ));

    let wrong = fake_abi(0x0002_0000, &body::answer(2048, 9, 0))
        .data(2048, b"{\"ok\":42}")
        .finish();
    let mut wrong = ProdguardModule::from_bytes(&wrong)
        .unwrap()
        .instantiate()
        .unwrap();
    let (status, answer) = wrong.call_json(Export::Evaluate, "{}").unwrap();
    assert_eq!(
        (status, answer.as_str()),
        (0, "{\"ok\":42}"),
        "call_json is byte-exact"
    );
    let error = wrong
        .evaluate(&EvaluateRequest::new("db.migrate"))
        .unwrap_err();
    assert!(matches!(error, Error::AbiViolation { .. }), "{error:?}");
}
