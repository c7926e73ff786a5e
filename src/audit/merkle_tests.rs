//! Tests of the Merkle tree: the certificate-transparency reference vectors, and every
//! size 0..=70 against a naive recursive reference written from RFC 6962 section 2.1.

use super::*;
use proptest::prelude::*;

fn sha(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

fn unhex(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

/// MTH(D[n]) over leaf hashes, straight from the RFC's recursive definition.
fn naive_mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => sha(b""),
        1 => d[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&naive_mth(&d[..k]), &naive_mth(&d[k..]))
        }
    }
}

fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn naive_path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() == 1 {
        return vec![];
    }
    let k = k_of(d.len());
    if m < k {
        let mut p = naive_path(m, &d[..k]);
        p.push(naive_mth(&d[k..]));
        p
    } else {
        let mut p = naive_path(m - k, &d[k..]);
        p.push(naive_mth(&d[..k]));
        p
    }
}

fn naive_subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    if m == d.len() {
        return if b { vec![] } else { vec![naive_mth(d)] };
    }
    let k = k_of(d.len());
    if m <= k {
        let mut p = naive_subproof(m, &d[..k], b);
        p.push(naive_mth(&d[k..]));
        p
    } else {
        let mut p = naive_subproof(m - k, &d[k..], false);
        p.push(naive_mth(&d[..k]));
        p
    }
}

fn leaves(n: usize) -> Vec<Hash> {
    (0..n as u32)
        .map(|i| leaf_hash(&sha(&i.to_be_bytes())))
        .collect()
}

fn flip(h: &Hash) -> Hash {
    let mut h = *h;
    h[7] ^= 0x10;
    h
}

/// The certificate-transparency test corpus (RFC 6962 reference implementation,
/// `merkle_tree_test`): leaf data and the roots of its first n leaves.
const CT_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn ct_leaf_hashes() -> Vec<Hash> {
    CT_LEAVES
        .iter()
        .map(|l| {
            let mut data = vec![0u8];
            data.extend(hex::decode(l).unwrap());
            sha(&data)
        })
        .collect()
}

#[test]
fn certificate_transparency_vectors() {
    let lh = ct_leaf_hashes();
    assert_eq!(empty_root(), unhex(CT_ROOTS[0]));
    for n in 0..=8 {
        assert_eq!(root(&lh[..n]), unhex(CT_ROOTS[n]), "root of {n}");
    }
    // Consistency proofs published with the same corpus.
    let cases: [(u64, u64, &[&str]); 3] = [
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (m, n, want) in cases {
        let want: Vec<Hash> = want.iter().map(|h| unhex(h)).collect();
        let got = consistency_proof(&lh[..n as usize], m).unwrap();
        assert_eq!(got, want, "consistency {m} -> {n}");
        let (old, new) = (unhex(CT_ROOTS[m as usize]), unhex(CT_ROOTS[n as usize]));
        assert!(verify_consistency(m, n, &old, &new, &got));
    }
}

#[test]
fn every_size_to_70_matches_the_naive_definition() {
    let all = leaves(70);
    let mut builder = TreeBuilder::new();
    for n in 0..=70usize {
        let d = &all[..n];
        let r = naive_mth(d);
        assert_eq!(root(d), r, "root of {n}");
        assert_eq!(builder.root(), r, "builder root of {n}");
        assert_eq!(builder.size(), n as u64);
        // Inclusion: every index, and the refusals.
        for i in 0..n {
            let p = inclusion_proof(d, i as u64).unwrap();
            assert_eq!(p, naive_path(i, d), "path {i} of {n}");
            assert!(verify_inclusion(&d[i], i as u64, n as u64, &p, &r));
            assert!(!verify_inclusion(&flip(&d[i]), i as u64, n as u64, &p, &r));
            assert!(!verify_inclusion(&d[i], i as u64, n as u64, &p, &flip(&r)));
            for j in 0..p.len() {
                let mut bad = p.clone();
                bad[j] = flip(&bad[j]);
                assert!(!verify_inclusion(&d[i], i as u64, n as u64, &bad, &r));
            }
            if n > 1 {
                let other = (i + 1) % n;
                assert!(!verify_inclusion(&d[i], other as u64, n as u64, &p, &r));
            }
            // A proof for size n does not prove the leaf in the real tree of n + 1 or
            // n - 1 leaves. (With this tree's own root a wrong size can pass, e.g. leaf 0
            // of 3 "as 4": the signed checkpoint binds the size to the root.)
            if n < all.len() {
                let bigger = naive_mth(&all[..n + 1]);
                assert!(!verify_inclusion(
                    &d[i],
                    i as u64,
                    n as u64 + 1,
                    &p,
                    &bigger
                ));
            }
            if i + 1 < n {
                let smaller = naive_mth(&d[..n - 1]);
                assert!(!verify_inclusion(
                    &d[i],
                    i as u64,
                    n as u64 - 1,
                    &p,
                    &smaller
                ));
            }
            let mut longer = p.clone();
            longer.push(r);
            assert!(!verify_inclusion(&d[i], i as u64, n as u64, &longer, &r));
            if !p.is_empty() {
                assert!(!verify_inclusion(&d[i], i as u64, n as u64, &p[1..], &r));
            }
        }
        assert_eq!(inclusion_proof(d, n as u64), None);
        // Consistency: every old size.
        for m in 0..=n {
            let p = consistency_proof(d, m as u64).unwrap();
            let want = if m == 0 {
                vec![]
            } else {
                naive_subproof(m, d, true)
            };
            assert_eq!(p, want, "consistency {m} -> {n}");
            let old = naive_mth(&d[..m]);
            assert!(
                verify_consistency(m as u64, n as u64, &old, &r, &p),
                "{m} -> {n}"
            );
            assert!(!verify_consistency(m as u64, n as u64, &flip(&old), &r, &p));
            if m > 0 {
                // Every tree extends the empty tree, whatever its root.
                assert!(!verify_consistency(m as u64, n as u64, &old, &flip(&r), &p));
            }
            for j in 0..p.len() {
                let mut bad = p.clone();
                bad[j] = flip(&bad[j]);
                assert!(!verify_consistency(m as u64, n as u64, &old, &r, &bad));
            }
            if m > 0 && m < n {
                assert!(!verify_consistency(m as u64 + 1, n as u64, &old, &r, &p));
                if n < all.len() {
                    let bigger = naive_mth(&all[..n + 1]);
                    assert!(!verify_consistency(
                        m as u64,
                        n as u64 + 1,
                        &old,
                        &bigger,
                        &p
                    ));
                }
                assert!(!verify_consistency(m as u64, n as u64, &old, &r, &[]));
            }
        }
        assert_eq!(consistency_proof(d, n as u64 + 1), None);
        if n > 0 {
            assert!(!verify_consistency(n as u64, n as u64 - 1, &r, &r, &[]));
        }
        if let Some(leaf) = all.get(n) {
            builder.push(*leaf);
        }
    }
}

/// The ranges the broker streams: an inclusion proof's are disjoint and cover every leaf
/// but the proven one; a consistency proof's are disjoint; both stay O(log n) long, so a
/// proof in a tree of a trillion leaves is a few dozen ranges.
#[test]
fn proof_ranges_are_disjoint_and_logarithmic() {
    let disjoint = |r: &[LeafRange]| {
        let mut r = r.to_vec();
        r.sort_unstable();
        r.windows(2).all(|w| w[0].1 <= w[1].0) && r.iter().all(|(a, b)| a < b)
    };
    for n in 1..=70u64 {
        for m in 0..n {
            let r = inclusion_ranges(m, n).unwrap();
            assert!(disjoint(&r), "{n} {m} {r:?}");
            let covered: u64 = r.iter().map(|(a, b)| b - a).sum();
            assert_eq!(covered, n - 1, "{n} {m}");
            assert!(!r.iter().any(|(a, b)| (*a..*b).contains(&m)));
        }
        for m in 0..=n {
            assert!(disjoint(&consistency_ranges(m, n).unwrap()), "{n} {m}");
        }
        assert_eq!(inclusion_ranges(n, n), None);
        assert_eq!(consistency_ranges(n + 1, n), None);
    }
    let big = 1_000_000_000_000;
    assert!(inclusion_ranges(big / 3, big).unwrap().len() <= 40);
    assert!(consistency_ranges(big / 3, big).unwrap().len() <= 80);
}

proptest! {
    #[test]
    fn builder_matches_naive_for_random_leaves(seeds in proptest::collection::vec(any::<[u8; 32]>(), 0..200)) {
        let d: Vec<Hash> = seeds.iter().map(leaf_hash).collect();
        let mut b = TreeBuilder::new();
        for l in &d {
            b.push(*l);
        }
        prop_assert_eq!(b.root(), naive_mth(&d));
        prop_assert_eq!(root(&d), naive_mth(&d));
    }
}
