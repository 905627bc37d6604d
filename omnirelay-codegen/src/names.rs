//! The Rust names prost generates in each package, so the service glue can avoid them.

use std::collections::{BTreeMap, HashMap, HashSet};

use prost_build::Module;
use prost_types::{DescriptorProto, FileDescriptorSet};

use crate::ident::{sanitize, to_snake, to_upper_camel};
use crate::text::replace_path;

/// The module names of `package`'s direct sub-packages, as prost spells them.
fn sub_package_modules(fds: &FileDescriptorSet, package: &str) -> HashMap<String, String> {
    let prefix = if package.is_empty() {
        String::new()
    } else {
        format!("{package}.")
    };
    let mut out = HashMap::new();
    for file in &fds.file {
        if let Some(rest) = file.package().strip_prefix(prefix.as_str())
            && !rest.is_empty()
            && file.package() != package
        {
            let first = rest.split('.').next().unwrap_or(rest);
            out.insert(sanitize(&to_snake(first)), format!("{prefix}{first}"));
        }
    }
    out
}

/// The items prost puts in a message's nested-type module: nested messages and enums, and the
/// enums of its real (non-synthetic) oneofs, with prost's `OneOf` suffix where it adds one.
fn nested_items(message: &DescriptorProto) -> Vec<String> {
    let mut items: Vec<String> = message
        .nested_type
        .iter()
        .map(|n| to_upper_camel(n.name()))
        .chain(message.enum_type.iter().map(|e| to_upper_camel(e.name())))
        .collect();
    for (index, oneof) in message.oneof_decl.iter().enumerate() {
        let synthetic = message
            .field
            .iter()
            .any(|f| f.oneof_index == Some(index as i32) && f.proto3_optional());
        if synthetic {
            continue;
        }
        let name = to_upper_camel(oneof.name());
        if items.contains(&name) {
            items.push(format!("{name}OneOf"));
        } else {
            items.push(name);
        }
    }
    items
}

/// A message's nested-type module and a sub-package can both be `mod depot` in one parent
/// (prost's E0428). The nested-type module is renamed `depot_` when, and only when, a sibling
/// sub-package of that name exists, and every path to its items is rewritten to match. Names
/// the sub-package also defines are left alone (such a reference is ambiguous in prost's output
/// itself).
pub(crate) fn rename_clashing_nested_modules(
    fds: &FileDescriptorSet,
    files: &mut BTreeMap<String, (Module, String)>,
) {
    let mut renames: Vec<(String, String, String, String)> = Vec::new();
    for file in &fds.file {
        let subs = sub_package_modules(fds, file.package());
        for message in &file.message_type {
            let module = sanitize(&to_snake(message.name()));
            let items = nested_items(message);
            let Some(sub_package) = subs.get(&module) else {
                continue;
            };
            if items.is_empty() {
                continue;
            }
            let sub_types: HashSet<String> = fds
                .file
                .iter()
                .filter(|f| f.package() == sub_package)
                .flat_map(|f| {
                    f.message_type
                        .iter()
                        .map(|m| to_upper_camel(m.name()))
                        .chain(f.enum_type.iter().map(|e| to_upper_camel(e.name())))
                })
                .collect();
            let renamed = format!("{}_", module.trim_start_matches("r#"));
            for item in items.into_iter().filter(|i| !sub_types.contains(i)) {
                renames.push((
                    file.package().to_owned(),
                    module.clone(),
                    renamed.clone(),
                    item,
                ));
            }
        }
    }
    for (package, module, renamed, item) in &renames {
        if let Some((_, content)) = files.get_mut(package) {
            let declaration = format!("\npub mod {module} {{\n");
            *content = content.replace(&declaration, &format!("\npub mod {renamed} {{\n"));
        }
        let from = format!("{module}::{item}");
        let to = format!("{renamed}::{item}");
        for (_, content) in files.values_mut() {
            *content = replace_path(content, &from, &to);
        }
    }
}

/// Per proto package: the type names (messages, enums) and module names (nested-type modules,
/// sub-package modules) prost puts in its module.
pub(crate) fn taken_names(fds: &FileDescriptorSet) -> HashMap<String, HashSet<String>> {
    let mut taken: HashMap<String, HashSet<String>> = HashMap::new();
    let packages: Vec<&str> = fds.file.iter().map(|f| f.package()).collect();
    for file in &fds.file {
        let names = taken.entry(file.package().to_owned()).or_default();
        for message in &file.message_type {
            names.insert(to_upper_camel(message.name()));
            names.insert(sanitize(&to_snake(message.name())));
        }
        for e in &file.enum_type {
            names.insert(to_upper_camel(e.name()));
        }
    }
    for package in packages {
        let subs = sub_package_modules(fds, package);
        taken
            .entry(package.to_owned())
            .or_default()
            .extend(subs.into_keys());
    }
    taken
}
