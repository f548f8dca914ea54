//! Reading a Cairo PIE zip and extracting its output segment.
//!
//! The zip is opened here (rather than with `CairoPie::from_bytes`) so that each failure has its
//! own [`FactError`] variant: an unreadable zip, a zip that lacks the PIE entries, a malformed
//! entry. The entries themselves are decoded with cairo-vm's own serde types, so the resulting
//! [`CairoPie`] is exactly what cairo-vm would build.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Seek};
use std::path::Path;

use cairo_vm::types::builtin_name::BuiltinName;
use cairo_vm::types::relocatable::MaybeRelocatable;
use cairo_vm::vm::runners::cairo_pie::{
    CairoPie, CairoPieAdditionalData, CairoPieMemory, CairoPieMetadata, CairoPieVersion,
};
use cairo_vm::vm::runners::cairo_runner::ExecutionResources;
use starknet_types_core::felt::Felt;

use super::FactError;

/// Entries a Cairo PIE zip must contain (`version.json` is optional, as in cairo-vm).
const METADATA: &str = "metadata.json";
const MEMORY: &str = "memory.bin";
const ADDITIONAL_DATA: &str = "additional_data.json";
const EXECUTION_RESOURCES: &str = "execution_resources.json";
const VERSION: &str = "version.json";

/// Reads a Cairo PIE from a zip file on disk.
pub fn read_pie_file(path: &Path) -> Result<CairoPie, FactError> {
    let bytes =
        std::fs::read(path).map_err(|source| FactError::Io { path: path.to_path_buf(), source })?;
    read_pie_bytes(&bytes)
}

/// Reads a Cairo PIE from the bytes of its zip file.
pub fn read_pie_bytes(bytes: &[u8]) -> Result<CairoPie, FactError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(FactError::ZipUnreadable)?;

    // Check the mandatory entries first so that "not a PIE" is reported as such, whatever the
    // order of the entries in the archive.
    for entry in [METADATA, MEMORY, ADDITIONAL_DATA, EXECUTION_RESOURCES] {
        if archive.index_for_name(entry).is_none() {
            return Err(FactError::PieEntryMissing(entry));
        }
    }

    let version: CairoPieVersion = match archive.index_for_name(VERSION) {
        Some(_) => read_json(&mut archive, VERSION)?,
        None => CairoPieVersion { cairo_pie: () },
    };
    let metadata: CairoPieMetadata = read_json(&mut archive, METADATA)?;
    let memory_bytes = read_entry(&mut archive, MEMORY)?;
    let memory = CairoPieMemory::from_bytes(&memory_bytes)
        .ok_or(FactError::PieMemoryInvalid { len: memory_bytes.len() })?;
    let execution_resources: ExecutionResources = read_json(&mut archive, EXECUTION_RESOURCES)?;
    let additional_data: CairoPieAdditionalData = read_json(&mut archive, ADDITIONAL_DATA)?;

    Ok(CairoPie { metadata, memory, execution_resources, additional_data, version })
}

fn read_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    entry: &'static str,
) -> Result<Vec<u8>, FactError> {
    let mut file = archive.by_name(entry).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => FactError::PieEntryMissing(entry),
        other => FactError::ZipUnreadable(other),
    })?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).map_err(|source| FactError::PieEntryUnreadable { entry, source })?;
    Ok(buf)
}

fn read_json<R: Read + Seek, T: serde::de::DeserializeOwned>(
    archive: &mut zip::ZipArchive<R>,
    entry: &'static str,
) -> Result<T, FactError> {
    let bytes = read_entry(archive, entry)?;
    serde_json::from_slice(&bytes).map_err(|source| FactError::PieEntryInvalid { entry, source })
}

/// Returns the output segment of the PIE: the value of every cell of the output builtin's
/// segment, in order.
///
/// Every cell must be present exactly once and hold an integer; the number of cells must equal
/// the segment size recorded in the metadata.
pub fn program_output(pie: &CairoPie) -> Result<Vec<Felt>, FactError> {
    let segment = pie
        .metadata
        .builtin_segments
        .get(&BuiltinName::output)
        .ok_or(FactError::OutputSegmentMissing)?;
    let index = usize::try_from(segment.index).map_err(|_| FactError::OutputSegmentMissing)?;
    let size = segment.size;

    // The cells by offset. The segment size comes from the PIE's metadata and may be anything:
    // nothing here is allocated by it, only by the cells the memory really holds.
    let mut cells: BTreeMap<usize, Felt> = BTreeMap::new();
    for ((seg, offset), value) in &pie.memory.0 {
        if *seg != index {
            continue;
        }
        let offset = *offset;
        if offset >= size {
            return Err(FactError::OutputCellOutOfRange { offset, size });
        }
        let felt = match value {
            MaybeRelocatable::Int(felt) => *felt,
            MaybeRelocatable::RelocatableValue(_) => {
                return Err(FactError::OutputCellNotInteger { offset })
            }
        };
        if cells.insert(offset, felt).is_some() {
            return Err(FactError::OutputCellDuplicate { offset });
        }
    }

    // Distinct offsets below `size`: all are there exactly when there are `size` of them, and
    // otherwise the first missing one is the first offset that does not match its rank.
    let present = cells.len();
    if present != size {
        let offset = cells.keys().zip(0..).find(|(k, i)| *k != i).map_or(present, |(_, i)| i);
        return Err(FactError::OutputCellMissing { offset, size, present });
    }
    Ok(cells.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fact::test_support::vector;
    use cairo_vm::types::relocatable::Relocatable;
    use cairo_vm::vm::runners::cairo_pie::SegmentInfo;

    #[test]
    fn reads_fibonacci_output() {
        let pie = read_pie_bytes(&vector("fibonacci.zip")).unwrap();
        let out = program_output(&pie).unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn reads_sepolia_output_of_23_cells() {
        let pie = read_pie_bytes(&vector("sepolia_924016.zip")).unwrap();
        let out = program_output(&pie).unwrap();
        assert_eq!(out.len(), 23);
    }

    #[test]
    fn same_pie_as_cairo_vm_loader() {
        let bytes = vector("sepolia_924016.zip");
        let ours = read_pie_bytes(&bytes).unwrap();
        let theirs = CairoPie::from_bytes(&bytes).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn truncated_zip_is_unreadable() {
        let bytes = vector("fibonacci.zip");
        let err = read_pie_bytes(&bytes[..bytes.len() / 2]).unwrap_err();
        assert!(matches!(err, FactError::ZipUnreadable(_)), "{err:?}");
    }

    #[test]
    fn random_bytes_are_unreadable() {
        let bytes: Vec<u8> =
            (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let err = read_pie_bytes(&bytes).unwrap_err();
        assert!(matches!(err, FactError::ZipUnreadable(_)), "{err:?}");
        assert!(matches!(read_pie_bytes(&[]).unwrap_err(), FactError::ZipUnreadable(_)));
    }

    fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            std::io::Write::write_all(&mut w, data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn zip_without_pie_entries_is_not_a_pie() {
        let err = read_pie_bytes(&zip_with(&[("hello.txt", b"hi")])).unwrap_err();
        assert!(matches!(err, FactError::PieEntryMissing("metadata.json")), "{err:?}");
    }

    #[test]
    fn malformed_json_entry_is_named() {
        let bytes = zip_with(&[
            (METADATA, b"{not json"),
            (MEMORY, b""),
            (ADDITIONAL_DATA, b"{}"),
            (EXECUTION_RESOURCES, b"{}"),
        ]);
        let err = read_pie_bytes(&bytes).unwrap_err();
        assert!(
            matches!(err, FactError::PieEntryInvalid { entry: "metadata.json", .. }),
            "{err:?}"
        );
    }

    fn pie_with_output(cells: Vec<((usize, usize), MaybeRelocatable)>, size: usize) -> CairoPie {
        let mut pie = read_pie_bytes(&vector("fibonacci.zip")).unwrap();
        pie.metadata.builtin_segments.insert(BuiltinName::output, SegmentInfo { index: 2, size });
        pie.memory.0.retain(|((seg, _), _)| *seg != 2);
        pie.memory.0.extend(cells);
        pie
    }

    #[test]
    fn relocatable_output_cell_is_rejected() {
        let reloc = MaybeRelocatable::RelocatableValue(Relocatable { segment_index: 1, offset: 0 });
        let pie = pie_with_output(vec![((2, 0), Felt::ONE.into()), ((2, 1), reloc)], 2);
        assert!(matches!(program_output(&pie), Err(FactError::OutputCellNotInteger { offset: 1 })));
    }

    #[test]
    fn missing_out_of_range_and_duplicate_cells_are_rejected() {
        let pie = pie_with_output(vec![((2, 0), Felt::ONE.into())], 2);
        assert!(matches!(
            program_output(&pie),
            Err(FactError::OutputCellMissing { offset: 1, size: 2, present: 1 })
        ));
        let pie = pie_with_output(vec![((2, 5), Felt::ONE.into())], 2);
        assert!(matches!(
            program_output(&pie),
            Err(FactError::OutputCellOutOfRange { offset: 5, .. })
        ));
        let pie = pie_with_output(vec![((2, 0), Felt::ONE.into()), ((2, 0), Felt::TWO.into())], 1);
        assert!(matches!(program_output(&pie), Err(FactError::OutputCellDuplicate { offset: 0 })));
    }

    /// Found by the `pie_fact` fuzz target: a metadata output segment size of 10^14 made this
    /// allocate 4 PB up front (the process aborted). The size is now only compared with the
    /// cells the memory holds.
    #[test]
    fn huge_output_segment_size_is_a_missing_cell_not_an_allocation() {
        for size in [99_999_999_999_999, usize::MAX] {
            let pie = pie_with_output(vec![((2, 0), Felt::ONE.into())], size);
            assert!(matches!(
                program_output(&pie),
                Err(FactError::OutputCellMissing { offset: 1, present: 1, .. })
            ));
        }
        // The same PIE as a zip, as the fuzz target read it.
        let fib = vector("fibonacci.zip");
        let mut archive = zip::ZipArchive::new(Cursor::new(&fib)).unwrap();
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        for i in 0..archive.len() {
            let mut f = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            entries.push((f.name().to_owned(), data));
        }
        for (name, data) in &mut entries {
            if name == METADATA {
                let text = String::from_utf8(data.clone()).unwrap().replace(
                    r#""output":{"index":2,"size":1}"#,
                    r#""output":{"index":2,"size":99999999999999}"#,
                );
                assert!(text.contains("99999999999999"));
                *data = text.into_bytes();
            }
        }
        let entries: Vec<(&str, &[u8])> =
            entries.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
        let pie = read_pie_bytes(&zip_with(&entries)).unwrap();
        assert!(matches!(
            program_output(&pie),
            Err(FactError::OutputCellMissing { offset: 1, .. })
        ));
        assert!(crate::fact::fact(&pie).is_err());
    }

    #[test]
    fn missing_cells_are_named_in_order() {
        let pie = pie_with_output(vec![((2, 0), Felt::ONE.into()), ((2, 2), Felt::TWO.into())], 4);
        assert!(matches!(
            program_output(&pie),
            Err(FactError::OutputCellMissing { offset: 1, size: 4, present: 2 })
        ));
        let pie = pie_with_output(vec![((2, 1), Felt::ONE.into()), ((2, 0), Felt::TWO.into())], 2);
        assert_eq!(program_output(&pie).unwrap(), vec![Felt::TWO, Felt::ONE]);
    }

    #[test]
    fn pie_without_output_builtin_is_rejected() {
        let mut pie = read_pie_bytes(&vector("fibonacci.zip")).unwrap();
        pie.metadata.builtin_segments.clear();
        assert!(matches!(program_output(&pie), Err(FactError::OutputSegmentMissing)));
    }
}
