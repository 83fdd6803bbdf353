//! One spelling for a function name, whether it comes from a procedure symbol (undecorated, qualified, no
//! arguments) or from a public symbol (decorated).

use msvc_demangler::DemangleFlags;
use std::borrow::Cow;

/// `scope::name<args>` as MSVC spells it in procedure symbols: `__int64`, no `class`/`struct` keywords.
const DEMANGLE: DemangleFlags =
    DemangleFlags::NAME_ONLY.union(DemangleFlags::MS_TYPENAMES).union(DemangleFlags::NO_CLASS_TYPE);

/// Undecorates a public name: `?...` C++ names are demangled to `scope::name` (template arguments kept);
/// with `x86_c_decoration` the C forms `_name`, `_name@N` (stdcall) and `@name@N` (fastcall) are stripped.
/// A name that fails to demangle stays as it is.
pub fn undecorate(name: &str, x86_c_decoration: bool) -> Cow<'_, str> {
    if name.starts_with('?') {
        return match msvc_demangler::demangle(name, DEMANGLE) {
            Ok(s) if !s.is_empty() => Cow::Owned(s),
            _ => Cow::Borrowed(name),
        };
    }
    if !x86_c_decoration {
        return Cow::Borrowed(name);
    }
    let stripped = if let Some(rest) = name.strip_prefix('@') {
        strip_arg_bytes(rest)
    } else if let Some(rest) = name.strip_prefix('_') {
        strip_arg_bytes(rest).or(Some(rest))
    } else {
        None
    };
    match stripped {
        Some(s) if !s.is_empty() => Cow::Borrowed(s),
        _ => Cow::Borrowed(name),
    }
}

/// `name@12` -> `name`; None when there is no `@` followed by decimal digits at the end.
fn strip_arg_bytes(s: &str) -> Option<&str> {
    let (head, digits) = s.rsplit_once('@')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(head)
}

#[cfg(test)]
mod tests {
    use super::undecorate;

    #[test]
    fn table() {
        let cases = [
            // (public or procedure name, x86 C decoration applies, expected)
            ("?make_widget@@YAPEAXH@Z", false, "make_widget"),
            ("?make_widget@@YAPAXH@Z", true, "make_widget"),
            ("?load@Texture@gfx@@SAPEAV12@H@Z", false, "gfx::Texture::load"),
            ("??2@YAPEAX_K@Z", false, "operator new"),
            ("??3@YAXPEAX_K@Z", false, "operator delete"),
            ("??$clamp_max@H@gfx@@YAHHH@Z", false, "gfx::clamp_max<int>"),
            ("??$clamp_max@_J@gfx@@YA_J_J0@Z", false, "gfx::clamp_max<__int64>"),
            (
                "?push_back@?$vector@HV?$allocator@H@std@@@std@@QEAAXAEBH@Z",
                false,
                "std::vector<int,std::allocator<int> >::push_back",
            ),
            ("_mainCRTStartup", true, "mainCRTStartup"),
            ("_cache_insert@4", true, "cache_insert"),
            ("@cache_hash@4", true, "cache_hash"),
            ("__DllMainCRTStartup@12", true, "_DllMainCRTStartup"),
            ("_mainCRTStartup", false, "_mainCRTStartup"),
            ("plain", true, "plain"),
            ("_", true, "_"),
            ("@", true, "@"),
            ("@x@", true, "@x@"),
            ("?garbage", false, "?garbage"),
            ("gfx::Texture::load", false, "gfx::Texture::load"),
        ];
        for (name, x86, expected) in cases {
            assert_eq!(undecorate(name, x86), expected, "{name}");
        }
    }
}
