"""DNS numbers -> the names entries use (ENTRY.md; IANA registries; RFC 3597 for unknowns)."""

from __future__ import annotations

__all__ = ["class_name", "opcode_name", "rcode_name", "type_name"]

_TYPES = {
    1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR",
    10: "NULL", 11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP",
    18: "AFSDB", 19: "X25", 20: "ISDN", 21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG",
    25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT", 31: "EID", 32: "NIMLOC",
    33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 40: "SINK",
    41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC",
    48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA",
    55: "HIP", 56: "NINFO", 57: "RKEY", 58: "TALINK", 59: "CDS", 60: "CDNSKEY",
    61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF",
    100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID", 105: "L32", 106: "L64",
    107: "LP", 108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR",
    253: "MAILB", 254: "MAILA", 255: "ANY", 256: "URI", 257: "CAA", 32768: "TA", 32769: "DLV",
}  # fmt: skip
_CLASSES = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
_OPCODES = {0: "Query", 1: "IQuery", 2: "Status", 4: "Notify", 5: "Update", 6: "DSO"}
_RCODES = {
    0: "No Error",
    1: "Format Error",
    2: "Server Failure",
    3: "Non-Existent Domain",
    4: "Not Implemented",
    5: "Query Refused",
    6: "YXDomain",
    7: "YXRRSet",
    8: "NXRRSet",
    9: "Not Authoritative",
    10: "Not Zone",
    16: "Bad OPT Version",
    17: "Bad Key",
    18: "Bad Time",
    19: "Bad Mode",
    20: "Bad Name",
    21: "Bad Algorithm",
    22: "Bad Truncation",
    23: "Bad Cookie",
}


def type_name(value: int) -> str:
    return _TYPES.get(value) or f"TYPE{value}"


def class_name(value: int) -> str:
    return _CLASSES.get(value) or f"CLASS{value}"


def opcode_name(value: int) -> str:
    return _OPCODES.get(value) or f"Opcode{value}"


def rcode_name(value: int) -> str:
    return _RCODES.get(value) or f"RCode{value}"
