//! Field encryption through the SDK's envelope (header, AAD, random nonce) with each
//! provider, side by side with raw aws-lc-rs and ring AES-256-GCM on the same inputs.
//! Run: `cargo bench -p procuhelp-benches --bench crypto`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench set-up failure should stop the bench
#![allow(missing_docs)] // criterion_group! generates undocumented items

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use procuhelp_core::OrgId;
use procuhelp_core::crypto::{Aad, AwsLcAead, DataKey, EnvelopeKey, RustCryptoAead};

const SIZES: [usize; 4] = [64, 1024, 16 * 1024, 1024 * 1024];

fn bench(c: &mut Criterion) {
    let key = DataKey::generate().unwrap();
    let aad = Aad::field(
        OrgId::new(),
        "suppliers",
        "iban",
        "0191d2a4-6c1e-7a41-9c55-0d1b2f3e4a5b",
    );
    let rustcrypto = EnvelopeKey::new(&RustCryptoAead, &key, 1).unwrap();
    let awslc = EnvelopeKey::new(&AwsLcAead, &key, 1).unwrap();
    let raw_aws = aws_lc_rs::aead::LessSafeKey::new(
        aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, key.expose()).unwrap(),
    );
    let raw_ring = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key.expose()).unwrap(),
    );
    let raw_aad = vec![7u8; 60]; // about the size of the envelope's AAD

    let mut g = c.benchmark_group("encrypt");
    for size in SIZES {
        let msg = vec![0x5Au8; size];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("sdk_envelope_aws_lc", size),
            &msg,
            |b, m| b.iter(|| awslc.seal(&aad, m).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("sdk_envelope_rustcrypto", size),
            &msg,
            |b, m| b.iter(|| rustcrypto.seal(&aad, m).unwrap()),
        );
        g.bench_with_input(BenchmarkId::new("raw_aws_lc_rs", size), &msg, |b, m| {
            b.iter(|| {
                let mut buf = m.clone();
                let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key([1u8; 12]);
                raw_aws
                    .seal_in_place_append_tag(nonce, aws_lc_rs::aead::Aad::from(&raw_aad), &mut buf)
                    .unwrap();
                buf
            })
        });
        g.bench_with_input(BenchmarkId::new("raw_ring", size), &msg, |b, m| {
            b.iter(|| {
                let mut buf = m.clone();
                let nonce = ring::aead::Nonce::assume_unique_for_key([1u8; 12]);
                raw_ring
                    .seal_in_place_append_tag(nonce, ring::aead::Aad::from(&raw_aad), &mut buf)
                    .unwrap();
                buf
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decrypt");
    for size in SIZES {
        let msg = vec![0x5Au8; size];
        let sealed = awslc.seal(&aad, &msg).unwrap();
        let mut raw_sealed = msg.clone();
        raw_aws
            .seal_in_place_append_tag(
                aws_lc_rs::aead::Nonce::assume_unique_for_key([1u8; 12]),
                aws_lc_rs::aead::Aad::from(&raw_aad),
                &mut raw_sealed,
            )
            .unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::new("sdk_envelope_aws_lc", size),
            &sealed,
            |b, s| b.iter(|| awslc.open(&aad, s).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("sdk_envelope_rustcrypto", size),
            &sealed,
            |b, s| b.iter(|| rustcrypto.open(&aad, s).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("raw_aws_lc_rs", size),
            &raw_sealed,
            |b, s| {
                b.iter(|| {
                    let mut buf = s.clone();
                    let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key([1u8; 12]);
                    raw_aws
                        .open_in_place(nonce, aws_lc_rs::aead::Aad::from(&raw_aad), &mut buf)
                        .unwrap()
                        .len()
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("raw_ring", size), &raw_sealed, |b, s| {
            b.iter(|| {
                let mut buf = s.clone();
                let nonce = ring::aead::Nonce::assume_unique_for_key([1u8; 12]);
                raw_ring
                    .open_in_place(nonce, ring::aead::Aad::from(&raw_aad), &mut buf)
                    .unwrap()
                    .len()
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(2)).warm_up_time(std::time::Duration::from_millis(500));
    targets = bench
}
criterion_main!(benches);
