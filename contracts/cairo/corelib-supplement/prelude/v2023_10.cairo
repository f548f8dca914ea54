// Written for this project: the edition v2023_10 prelude that PyPI cairo-lang 0.13.0 leaves out
// of its corelib. Names a crate of this edition sees without a `use`: every item at the root of
// `core` (this project's editions share one list; a larger prelude only adds names).
use core::{
    Add, AddEq, BitAnd, BitNot, BitOr, BitXor, Copy, Div, DivEq, DivRem, Drop, Mul, MulEq,
    PartialEq, PartialOrd, Rem, RemEq, Sub, SubEq, TupleSize0Copy, TupleSize0Drop, Not, Neg,
    Into, TryInto, Index, IndexView, Destruct, Default, Felt252DictValue, PanicDestruct, Serde,
    Felt252One, Felt252Zero, Box, BoxTrait, Nullable, NullableTrait, match_nullable, null,
    nullable_from_box, Array, ArrayTrait, Span, SpanTrait, Felt252Dict, SquashedFelt252Dict,
    felt252_dict_new, felt252_dict_squash, Felt252DictTrait, Result, ResultTrait, Option,
    OptionTrait, Clone, EcOp, EcPoint, EcState, i8, i8_const, I8IntoFelt252, i16, i16_const,
    I16IntoFelt252, i32, i32_const, I32IntoFelt252, i64, i64_const, I64IntoFelt252, i128,
    i128_const, I128IntoFelt252, NumericLiteral, u128, u128_const, u128_sqrt, u128_is_zero, u8,
    u8_const, u16, u16_const, u32, u32_const, u64, u64_const, u256, u256_sqrt,
    Felt252TryIntoU8, U8IntoFelt252, Felt252TryIntoU16, U16IntoFelt252, Felt252TryIntoU32,
    U32IntoFelt252, Felt252TryIntoU64, U64IntoFelt252, Felt252TryIntoU128, U128IntoFelt252,
    Felt252IntoU256, Bitwise, BuiltinCosts, GasBuiltin, get_builtin_costs, panic, Panic,
    PanicResult, Pedersen, Poseidon, System, Zeroable, NonZero, bytes31, bytes31_const,
    Bytes31IndexView, Bytes31IntoFelt252, Bytes31Trait, Felt252TryIntoBytes31, ByteArray,
    ByteArrayIndexView, ByteArrayStringLiteral, ByteArrayTrait, StringLiteral, traits, usize,
    bool, bool_and_impl, bool_or_impl, bool_not_impl, bool_xor_impl, bool_to_felt252,
    RangeCheck, SegmentArena, felt_252, felt252, felt252_const, felt252_add, felt252_sub,
    felt252_mul, felt252_div, felt252_is_zero, dup, drop, box, nullable, array, dict, result,
    option, clone, ec, ecdsa, integer, math, num, cmp, gas, panics, never, panic_with_felt252,
    assert, serde, hash, keccak, pedersen, poseidon, debug, fmt, starknet, internal, zeroable,
    bytes_31, byte_array, string, to_byte_array, testing,
};
