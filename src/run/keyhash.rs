//! `featurecraft_key_hash(col, …)`: a stable 63-bit hash (a non-negative `BIGINT`) of a grain key, as a DataFusion UDF.
//!
//! Entity sampling keeps the keys whose hash is among the smallest: the same keys on every
//! run and machine, spread over the whole table rather than its first rows. The hash is
//! ours (SplitMix64 and FNV-1a over a canonical encoding), never a process-seeded one.
//! Integer keys hash by value whatever their width, so `Int32` and `Int64` grain columns of
//! two tables agree; other types hash their text form.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

/// The function's SQL name.
pub const KEY_HASH: &str = "featurecraft_key_hash";

/// Where every row's hash starts, before its key columns are mixed in.
const SEED: u64 = 0x51_7C_C1_B7_27_22_0A_95;

/// The UDF, ready to register in a session.
pub fn key_hash_udf() -> ScalarUDF {
    ScalarUDF::from(KeyHash {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyHash {
    signature: Signature,
}

impl ScalarUDFImpl for KeyHash {
    fn name(&self) -> &str {
        KEY_HASH
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.is_empty() {
            return exec_err!("{KEY_HASH} needs at least one column");
        }
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        if let [key] = arrays.as_slice()
            && key.data_type().is_integer()
        {
            let ints = cast(key, &DataType::Int64)?;
            let ints = ints.as_primitive::<Int64Type>();
            let nulls = ints.nulls().filter(|n| n.null_count() > 0);
            let hashes = hash_int_keys(ints.values(), nulls);
            return Ok(ColumnarValue::Array(Arc::new(Int64Array::from(hashes))));
        }
        let mut hashes = vec![SEED; rows];
        for array in &arrays {
            mix_column(array, &mut hashes)?;
        }
        let hashes: Vec<i64> = hashes.into_iter().map(finish).collect();
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(hashes))))
    }
}

/// A row's hash as the function returns it: 63 bits, a non-negative Int64, which every
/// engine and SQL literal handles.
#[inline(always)]
fn finish(hash: u64) -> i64 {
    (hash >> 1) as i64
}

/// The function of one integer key (an entity key: every row of every source in the
/// sampled run): each row's hash in one pass, straight into the result; the same values
/// as mixing the column into [`SEED`] and finishing them.
fn hash_int_keys(values: &[i64], nulls: Option<&NullBuffer>) -> Vec<i64> {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU was just checked for the features the function is compiled for.
        return unsafe { hash_int_keys_avx512(values, nulls) };
    }
    hash_int_keys_portable(values, nulls)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn hash_int_keys_avx512(values: &[i64], nulls: Option<&NullBuffer>) -> Vec<i64> {
    hash_int_keys_portable(values, nulls)
}

#[inline(always)]
fn hash_int_keys_portable(values: &[i64], nulls: Option<&NullBuffer>) -> Vec<i64> {
    let mut hashes: Vec<i64> = values
        .iter()
        .map(|v| finish(splitmix(SEED ^ splitmix(*v as u64))))
        .collect();
    if let Some(nulls) = nulls {
        let null = finish(splitmix(SEED ^ NULL_MARK));
        for row in (0..hashes.len()).filter(|row| nulls.is_null(*row)) {
            hashes[row] = null;
        }
    }
    hashes
}

fn mix_column(array: &ArrayRef, hashes: &mut [u64]) -> Result<()> {
    if array.data_type().is_integer() {
        let ints = cast(array, &DataType::Int64)?;
        let ints = ints.as_primitive::<Int64Type>();
        let nulls = ints.nulls().filter(|n| n.null_count() > 0);
        mix_ints(ints.values(), nulls, hashes);
    } else {
        let text = cast(array, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        for (row, h) in hashes.iter_mut().enumerate() {
            let value = if text.is_null(row) {
                NULL_MARK
            } else {
                fnv1a(text.value(row).as_bytes())
            };
            *h = splitmix(*h ^ value);
        }
    }
    Ok(())
}

/// Mixes integer values into the row hashes. The sampled run hashes every row of every
/// source, so this is its hottest loop: on a CPU with AVX-512 the same arithmetic runs
/// eight rows at a time (64-bit multiplies have no narrower vector form); the result is
/// the same on every CPU.
fn mix_ints(values: &[i64], nulls: Option<&NullBuffer>, hashes: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU was just checked for the features the function is compiled for.
        unsafe { mix_ints_avx512(values, nulls, hashes) };
        return;
    }
    mix_ints_portable(values, nulls, hashes);
}

/// Whether this CPU has the features the `…_avx512` loops here are compiled for
/// (`avx512f,avx512dq`; the standard library caches the answer).
#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
fn mix_ints_avx512(values: &[i64], nulls: Option<&NullBuffer>, hashes: &mut [u64]) {
    mix_ints_portable(values, nulls, hashes);
}

/// Two straight passes the compiler can vectorize: each value's hash (NULLs marked
/// afterwards), then the mix.
#[inline(always)]
fn mix_ints_portable(values: &[i64], nulls: Option<&NullBuffer>, hashes: &mut [u64]) {
    let mut mixed: Vec<u64> = values.iter().map(|v| splitmix(*v as u64)).collect();
    if let Some(nulls) = nulls {
        for row in (0..mixed.len()).filter(|row| nulls.is_null(*row)) {
            mixed[row] = NULL_MARK;
        }
    }
    for (h, value) in hashes.iter_mut().zip(mixed) {
        *h = splitmix(*h ^ value);
    }
}

const NULL_MARK: u64 = 0xA5A5_5A5A_C3C3_3C3C;

/// The SplitMix64 finalizer: a bijective, well-mixed map of 64-bit values.
#[inline(always)]
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int32Array, StringArray};

    /// The hash's definition, row by row: what the vectorized passes must reproduce.
    fn reference(arrays: &[ArrayRef], row: usize) -> u64 {
        arrays.iter().fold(SEED, |h, array| {
            let value = if array.is_null(row) {
                NULL_MARK
            } else if let Some(ints) = array.as_primitive_opt::<Int64Type>() {
                splitmix(ints.value(row) as u64)
            } else if let Some(ints) = array.as_primitive_opt::<arrow::datatypes::Int32Type>() {
                splitmix(i64::from(ints.value(row)) as u64)
            } else {
                fnv1a(array.as_string::<i32>().value(row).as_bytes())
            };
            splitmix(h ^ value)
        })
    }

    #[test]
    fn columns_mix_as_defined_row_by_row_with_nulls() {
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![
                Some(7),
                None,
                Some(-3),
                Some(i64::MAX),
                None,
            ])),
            Arc::new(Int32Array::from(vec![
                None,
                Some(1),
                Some(2),
                Some(-9),
                Some(0),
            ])),
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some(""),
                None,
                Some("ü"),
                Some("a"),
            ])),
        ];
        let mut hashes = vec![SEED; 5];
        for array in &arrays {
            mix_column(array, &mut hashes).expect("supported types");
        }
        for (row, h) in hashes.iter().enumerate() {
            assert_eq!(*h, reference(&arrays, row), "row {row}");
        }
        // The portable loop (what a CPU without AVX-512 runs) agrees with the dispatched one.
        let ints = [7i64, 0, -3, i64::MAX, 12];
        let nulls = NullBuffer::from(vec![true, false, true, true, false]);
        let mut portable = vec![3u64; 5];
        let mut dispatched = vec![3u64; 5];
        mix_ints_portable(&ints, Some(&nulls), &mut portable);
        mix_ints(&ints, Some(&nulls), &mut dispatched);
        assert_eq!(portable, dispatched);
        assert_eq!(portable[1], splitmix(3 ^ NULL_MARK));
        // Int32 and Int64 keys of equal value hash alike.
        let mut narrow = vec![1u64; 2];
        let mut wide = vec![1u64; 2];
        mix_column(
            &(Arc::new(Int32Array::from(vec![Some(5), None])) as ArrayRef),
            &mut narrow,
        )
        .expect("int32");
        mix_column(
            &(Arc::new(Int64Array::from(vec![Some(5), None])) as ArrayRef),
            &mut wide,
        )
        .expect("int64");
        assert_eq!(narrow, wide);
    }

    /// The function as DataFusion calls it, on `arrays` of `rows` rows.
    fn invoke(arrays: &[ArrayRef], rows: usize) -> Vec<i64> {
        use datafusion::arrow::datatypes::Field;
        let args = ScalarFunctionArgs {
            args: arrays.iter().cloned().map(ColumnarValue::Array).collect(),
            arg_fields: arrays
                .iter()
                .map(|a| Arc::new(Field::new("k", a.data_type().clone(), true)))
                .collect(),
            number_rows: rows,
            return_field: Arc::new(Field::new(KEY_HASH, DataType::Int64, false)),
            config_options: Arc::new(Default::default()),
        };
        let result = key_hash_udf().invoke_with_args(args).expect("hashed");
        let ColumnarValue::Array(hashes) = result else {
            panic!("an array expected");
        };
        hashes.as_primitive::<Int64Type>().values().to_vec()
    }

    #[test]
    fn one_integer_key_hashes_as_defined_with_nulls_and_any_width() {
        let keys: Vec<Option<i64>> = (0..300)
            .map(|i| (i % 7 != 3).then_some(i * 7919 - 1_000_000))
            .chain([Some(i64::MIN), Some(i64::MAX), None])
            .collect();
        let rows = keys.len();
        let key: ArrayRef = Arc::new(Int64Array::from(keys.clone()));
        let hashes = invoke(&[Arc::clone(&key)], rows);
        for (row, hash) in hashes.iter().enumerate() {
            assert_eq!(
                *hash,
                (reference(&[Arc::clone(&key)], row) >> 1) as i64,
                "row {row}"
            );
            assert!(*hash >= 0);
        }
        // A slice (an offset into its buffers) and a narrower type hash alike.
        let sliced = key.slice(5, 100);
        assert_eq!(invoke(&[sliced], 100), hashes[5..105]);
        let narrow: ArrayRef = Arc::new(Int32Array::from(
            keys.iter()
                .map(|k| k.map(|v| (v % 1_000_000) as i32))
                .collect::<Vec<_>>(),
        ));
        let same: ArrayRef = Arc::new(Int64Array::from(
            keys.iter()
                .map(|k| k.map(|v| v % 1_000_000))
                .collect::<Vec<_>>(),
        ));
        assert_eq!(invoke(&[narrow], rows), invoke(&[same], rows));
        // Two columns take the general path: the same definition.
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("x"); rows]));
        let pair = [Arc::clone(&key), text];
        for (row, hash) in invoke(&pair, rows).iter().enumerate() {
            assert_eq!(*hash, (reference(&pair, row) >> 1) as i64, "row {row}");
        }
    }
}
