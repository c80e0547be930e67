//! Released WIT versions stay beside the current one, and each newer
//! version keeps every interface, function and type of the released ones
//! with the same shape; the only change allowed is cases appended to an
//! enum. A host or component written against a released version then reads
//! every value of it the same way under the current one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

use std::collections::BTreeMap;
use std::path::Path;

use wit_parser::{PackageId, Resolve, Type, TypeDefKind};

const WIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../wit");

/// A type, named types by name (their definitions are compared on their own).
fn shape(resolve: &Resolve, ty: &Type) -> String {
    let Type::Id(id) = ty else {
        return format!("{ty:?}").to_lowercase();
    };
    let def = &resolve.types[*id];
    if let Some(name) = &def.name {
        return name.clone();
    }
    definition(resolve, &def.kind)
}

fn opt(resolve: &Resolve, ty: &Option<Type>) -> String {
    ty.as_ref().map_or("_".into(), |t| shape(resolve, t))
}

fn definition(resolve: &Resolve, kind: &TypeDefKind) -> String {
    match kind {
        TypeDefKind::Record(r) => {
            let fields: Vec<String> = r
                .fields
                .iter()
                .map(|f| format!("{}: {}", f.name, shape(resolve, &f.ty)))
                .collect();
            format!("record {{{}}}", fields.join(", "))
        }
        TypeDefKind::Variant(v) => {
            let cases: Vec<String> = v
                .cases
                .iter()
                .map(|c| format!("{}({})", c.name, opt(resolve, &c.ty)))
                .collect();
            format!("variant {{{}}}", cases.join(", "))
        }
        TypeDefKind::Enum(e) => {
            let cases: Vec<&str> = e.cases.iter().map(|c| c.name.as_str()).collect();
            format!("enum {{{}}}", cases.join(", "))
        }
        TypeDefKind::Flags(f) => {
            let flags: Vec<&str> = f.flags.iter().map(|c| c.name.as_str()).collect();
            format!("flags {{{}}}", flags.join(", "))
        }
        TypeDefKind::Tuple(t) => {
            let types: Vec<String> = t.types.iter().map(|t| shape(resolve, t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        TypeDefKind::Option(t) => format!("option<{}>", shape(resolve, t)),
        TypeDefKind::Result(r) => {
            format!("result<{}, {}>", opt(resolve, &r.ok), opt(resolve, &r.err))
        }
        TypeDefKind::List(t) => format!("list<{}>", shape(resolve, t)),
        TypeDefKind::Type(t) => shape(resolve, t),
        other => format!("{other:?}"),
    }
}

/// Interface → (item → shape): every type definition and function signature.
fn items(resolve: &Resolve, package: PackageId) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (name, &iface) in &resolve.packages[package].interfaces {
        let iface = &resolve.interfaces[iface];
        let mut map = BTreeMap::new();
        for (ty_name, &id) in &iface.types {
            map.insert(
                format!("type {ty_name}"),
                definition(resolve, &resolve.types[id].kind),
            );
        }
        for (f_name, f) in &iface.functions {
            let params: Vec<String> = f
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name, shape(resolve, &p.ty)))
                .collect();
            map.insert(
                format!("func {f_name}"),
                format!("({}) -> {}", params.join(", "), opt(resolve, &f.result)),
            );
        }
        out.insert(name.clone(), map);
    }
    out
}

/// `old` is kept in `new`, an enum's cases possibly extended at the end.
fn compatible(old: &str, new: &str) -> bool {
    if old == new {
        return true;
    }
    match (old.strip_prefix("enum {"), new.strip_prefix("enum {")) {
        (Some(o), Some(n)) => {
            let o = o.trim_end_matches('}');
            n.starts_with(o) && n[o.len()..].starts_with(", ")
        }
        _ => false,
    }
}

#[test]
fn released_versions_are_kept_and_only_extended() {
    let mut resolve = Resolve::default();
    let (current, _) = resolve.push_dir(WIT).unwrap();
    let current_version = resolve.packages[current].name.version.clone().unwrap();
    let now = items(&resolve, current);

    let mut released: Vec<_> = std::fs::read_dir(Path::new(WIT).join("released"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    released.sort();
    assert!(
        !released.is_empty(),
        "wit/released/ keeps the released versions"
    );
    for path in released {
        let mut own = Resolve::default();
        let package = own.push_file(&path).unwrap();
        let name = &own.packages[package].name;
        assert_eq!(name.namespace, "attest");
        assert_eq!(name.name, "policy");
        let version = name.version.clone().unwrap();
        assert!(version < current_version, "{}", path.display());
        let file = path.file_name().unwrap().to_string_lossy();
        assert_eq!(file, format!("attest-policy-{version}.wit"));
        let old = items(&own, package);
        let compared: usize = old.values().map(BTreeMap::len).sum();
        assert!(
            old.len() >= 5 && compared >= 30,
            "{version}: {compared} items read"
        );
        for (iface, old_items) in old {
            let new_items = now
                .get(&iface)
                .unwrap_or_else(|| panic!("{version}: interface {iface} is gone"));
            for (item, old_shape) in old_items {
                let new_shape = new_items
                    .get(&item)
                    .unwrap_or_else(|| panic!("{version}: {iface}.{item} is gone"));
                assert!(
                    compatible(&old_shape, new_shape),
                    "{version}: {iface}.{item} changed:\n  was {old_shape}\n  now {new_shape}"
                );
            }
        }
    }
}

/// The comparison itself: a removed case, a reordered enum or a changed
/// field is caught.
#[test]
fn compatibility_is_strict() {
    assert!(compatible("enum {a, b}", "enum {a, b, c}"));
    assert!(!compatible("enum {a, b}", "enum {a, c, b}"));
    assert!(!compatible("enum {a, b}", "enum {a}"));
    assert!(!compatible("enum {a, b}", "enum {a, bc}"));
    assert!(!compatible("record {a: u8}", "record {a: u16}"));
}
