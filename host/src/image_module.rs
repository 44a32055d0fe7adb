//! The policy module, rewritten so that an instance can start from a
//! memory image instead of from its data segments.
//!
//! Instantiating a module writes its active data segments into linear
//! memory. For an instance that starts from a loaded snapshot's image
//! ([`super::memory_image`]) that write would reset the allocator's and the
//! engine's statics to their initial values — the image already holds
//! them, as the load left them. So the module is compiled with every active
//! data segment made passive (instantiation writes nothing), the segments
//! are kept here and written by the host into a fresh instance only, and
//! every mutable global (the shadow-stack pointer) is exported so that its
//! value can be captured with the image and restored in each instance
//! started from it — what `wasmtime-wizer` does, without recompiling the
//! module for every snapshot.

use wasm_encoder::{ExportKind, ExportSection, RawSection};
use wasmparser::{DataKind, Operator, Parser, Payload};

/// The prefix of the exports added for mutable globals.
const GLOBAL_EXPORT: &str = "__portcullis_global_";

/// What the host must do for the rewritten module that instantiation no
/// longer does.
pub(crate) struct ImageModule {
    /// The active data segments: (offset in memory 0, bytes).
    pub segments: Vec<(usize, Vec<u8>)>,
    /// The exports naming the module's mutable globals.
    pub globals: Vec<String>,
}

/// Rewrites `wasm`: the module to compile, and its layout. Refused: modules that import anything (the policy
/// module's host provides no imports), have a start function (it would run
/// again over a loaded image), define more than one memory, or place a data
/// segment at an offset that is not a constant.
pub(crate) fn prepare(wasm: &[u8]) -> Result<(Vec<u8>, ImageModule), String> {
    let mut out = wasm_encoder::Module::new();
    let mut segments = Vec::new();
    let mut globals = Vec::new();
    let mut mutable_globals = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| e.to_string())?;
        match payload {
            Payload::ImportSection(s) if s.count() > 0 => {
                return Err("the policy module must import nothing".into());
            }
            Payload::StartSection { .. } => {
                return Err("the policy module must not have a start function".into());
            }
            Payload::MemorySection(s) if s.count() > 1 => {
                return Err("the policy module must define one memory".into());
            }
            Payload::GlobalSection(s) => {
                for (index, global) in s.clone().into_iter().enumerate() {
                    if global.map_err(|e| e.to_string())?.ty.mutable {
                        mutable_globals.push(index as u32);
                    }
                }
                out.section(&RawSection {
                    id: wasm_encoder::SectionId::Global as u8,
                    data: section_bytes(wasm, s.range())?,
                });
            }
            Payload::ExportSection(s) => {
                let mut exports = ExportSection::new();
                for export in s {
                    let export = export.map_err(|e| e.to_string())?;
                    exports.export(export.name, export_kind(export.kind)?, export.index);
                }
                for &index in &mutable_globals {
                    let name = format!("{GLOBAL_EXPORT}{index}");
                    exports.export(&name, ExportKind::Global, index);
                    globals.push(name);
                }
                out.section(&exports);
            }
            Payload::DataSection(s) => {
                let mut data = wasm_encoder::DataSection::new();
                for segment in s {
                    let segment = segment.map_err(|e| e.to_string())?;
                    if let DataKind::Active {
                        memory_index,
                        offset_expr,
                    } = segment.kind
                    {
                        if memory_index != 0 {
                            return Err("a data segment names a second memory".into());
                        }
                        let offset = match offset_expr.get_operators_reader().read() {
                            Ok(Operator::I32Const { value }) => value as u32 as usize,
                            _ => return Err("a data segment's offset is not a constant".into()),
                        };
                        segments.push((offset, segment.data.to_vec()));
                    }
                    data.passive(segment.data.iter().copied());
                }
                out.section(&data);
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection {
                        id,
                        data: section_bytes(wasm, range)?,
                    });
                }
            }
        }
    }
    if globals.len() != mutable_globals.len() {
        return Err(
            "the policy module exports nothing (it must export its memory and functions)".into(),
        );
    }
    Ok((out.finish(), ImageModule { segments, globals }))
}

fn section_bytes(wasm: &[u8], range: std::ops::Range<usize>) -> Result<&[u8], String> {
    wasm.get(range)
        .ok_or_else(|| "a section runs past the module's end".to_string())
}

fn export_kind(kind: wasmparser::ExternalKind) -> Result<ExportKind, String> {
    Ok(match kind {
        wasmparser::ExternalKind::Func => ExportKind::Func,
        wasmparser::ExternalKind::Table => ExportKind::Table,
        wasmparser::ExternalKind::Memory => ExportKind::Memory,
        wasmparser::ExternalKind::Global => ExportKind::Global,
        wasmparser::ExternalKind::Tag => ExportKind::Tag,
        other => return Err(format!("unsupported export kind {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_becomes_passive_and_mutable_globals_are_exported() {
        let wasm = wat::parse_str(
            r#"(module
                 (memory (export "memory") 1)
                 (global $sp (mut i32) (i32.const 4096))
                 (global $base i32 (i32.const 8))
                 (data (i32.const 16) "hello")
                 (func (export "f") (result i32) (global.get $sp)))"#,
        )
        .unwrap_or_default();
        let (rewritten, m) = prepare(&wasm).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.segments, vec![(16, b"hello".to_vec())]);
        assert_eq!(m.globals, vec![format!("{GLOBAL_EXPORT}0")]);
        let mut active = 0;
        for p in Parser::new(0).parse_all(&rewritten) {
            if let Ok(Payload::DataSection(s)) = p {
                for d in s.into_iter().flatten() {
                    if matches!(d.kind, DataKind::Active { .. }) {
                        active += 1;
                    }
                }
            }
        }
        assert_eq!(active, 0);
    }

    #[test]
    fn imports_and_start_functions_are_refused() {
        let import = wat::parse_str(r#"(module (import "env" "f" (func)))"#).unwrap_or_default();
        assert!(prepare(&import).is_err());
        let start = wat::parse_str(r#"(module (func $s) (start $s))"#).unwrap_or_default();
        assert!(prepare(&start).is_err());
    }
}
