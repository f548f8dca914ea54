// Written for this project: the `core::num::traits` module that PyPI cairo-lang 0.13.0 leaves
// out of its corelib. Only the two traits the rest of that corelib implements.

/// The additive identity of `T`.
trait Zero<T> {
    fn zero() -> T;
    fn is_zero(self: @T) -> bool;
    fn is_non_zero(self: @T) -> bool;
}

/// The multiplicative identity of `T`.
trait One<T> {
    fn one() -> T;
    fn is_one(self: @T) -> bool;
    fn is_non_one(self: @T) -> bool;
}
