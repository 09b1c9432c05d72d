//! A throwaway lab of network namespaces (IPv6-only client, gateway, IPv4-only
//! server), used by `xlat64 demo` and the end-to-end tests.
