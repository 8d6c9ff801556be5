"""chip.ini's one declarative table (Table 25 of the operating guide, plus sonocli's own parameters).

Everything that knows about a parameter reads it from here: validation messages (name, value, allowed
range), the default chip.ini written by ``sonocli init``, ``sonocli config show`` and the man page.

Names follow the guide's footnote "names are wrapped without a hyphen": ``METER_MAXDEVICE-COUNT`` in the
table is ``METER_MAXDEVICECOUNT`` in the file. Where the table leaves a range empty (FTP_ENABLE,
TLS_ENABLE, MBUS_BAUDRATE) the web page's field decides (a check box; 300..19200 baud). sonocli also allows
38400 baud (USB level converters): the baud rates and the receiver names come from ``sonocli.registry``, the
same lists ``--baud`` and ``--dongle`` check.

The secondary-scan masks take exactly as many digits as the table says (4 for the manufacturer, 2 for version
and medium, 8 for the serial), with or without ``0x``. The table allows only "0-9 each" for manufacturer,
version and medium; EN 13757-3 codes them as binary bytes (manufacturer ``0x2C2D`` is "KAM", medium ``0x0E``
is "bus/system"), so sonocli takes any hex digit there. It also lists "0xFFFF" for the 2-digit medium mask,
a slip for ``0xFF`` (the table's own default). Only the serial mask is BCD: digits 0-9 or F (wildcard).

:func:`check_setting` is the one check of a value, for a line of chip.ini, ``config set`` and command options
that override a parameter (``--baud``, ``--retries``, ...): the same rule, the same message.
"""

from __future__ import annotations

import ipaddress
import re

from sonocli.errors import ConfigError
from sonocli.model.valueclass import replace, valueclass
from sonocli.registry import BAUD_RATES, dongle_names
from sonocli.registry import PORT_SCHEMES as REGISTRY_PORT_SCHEMES

Value = int | str | bool

U32 = 4294967295
U16 = 65535

KINDS = ("int", "bool", "choice", "text", "ip", "mask", "port")
# URL schemes a port may use: pyserial's (serial_for_url) and sonocli's simulator (declared in the registry)
PORT_SCHEMES = REGISTRY_PORT_SCHEMES
TABS = ("general", "configuration", "server", "security", "sonocli")


@valueclass(frozen=True)
class Param:
    """One chip.ini parameter.

    ``type`` is the kind of value: ``int`` (``minimum``..``maximum``), ``bool`` (0/1), ``choice``
    (``choices``), ``text`` (at most ``max_length`` characters), ``ip`` (dotted IPv4, or empty where
    ``default`` is empty), ``mask`` (exactly ``max_length`` hex digits, with or without ``0x``), ``port``
    (a port URL: device path, ``socket://HOST:PORT``, ``sim://NAME`` …; checked as far as it can be offline).
    """

    group: str
    name: str
    type: str
    default: Value
    help: str
    tab: str
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str | int, ...] = ()
    max_length: int | None = None
    default_note: str = ""  # shown instead of the default where the guide computes it
    charset: str = ""  # for masks: the digits allowed (default: all hex digits)
    padded: bool = False  # for masks: fewer digits are filled up with leading zeros (the serial mask, Table 12)
    secret: bool = False  # a password: never shown in messages or logs, masked by config show/get
    # why setting this parameter changes nothing in sonocli (None: sonocli reads it and acts on it)
    no_effect: str | None = None

    @property
    def works(self) -> bool:
        """Whether sonocli reads this parameter (else ``no_effect`` says why it is kept but ignored)."""
        return self.no_effect is None

    @property
    def key(self) -> str:
        return f"{self.group}.{self.name}"

    def allowed(self) -> str:
        """The valid range in words, for error messages and ``config show``."""
        if self.type == "int":
            return f"{self.minimum}..{self.maximum}"
        if self.type == "bool":
            return "0 or 1"
        if self.type == "choice":
            return ", ".join("empty" if choice == "" else str(choice) for choice in self.choices)
        if self.type == "ip":
            tail = " or empty" if self.default == "" else ""
            return f"an IPv4 address 0.0.0.0..255.255.255.255{tail}"
        if self.type == "mask":
            if self.padded:
                return (f"at most {self.max_length} characters 0-9, A-E or F (F: any digit), 0x prefix optional, "
                        f"shorter masks get leading zeros, e.g. 0x{'F' * (self.max_length or 1)}")
            digits = "digits 0-9 or F (F: any)" if self.charset else "hex digits"
            return f"exactly {self.max_length} {digits}, 0x prefix optional, e.g. 0x{'F' * (self.max_length or 1)}"
        if self.type == "port":
            return (
                "empty, a device path (/dev/ttyUSB0), socket://HOST:PORT, rfc2217://HOST:PORT, sim://NAME, "
                f"spy://, loop://, hwgrep://, alt://, file:PATH or - (at most {self.max_length} characters)"
            )
        return f"text of at most {self.max_length} characters"

    def parse(self, text: str) -> Value:
        """The typed value of ``text``; ValueError naming the allowed range when it is not valid."""
        raw = text.strip()
        if self.type in ("int", "bool"):
            if not re.fullmatch(r"[+-]?\d+", raw):
                raise ValueError(f"not a whole number; allowed: {self.allowed()}")
            number = int(raw)
            if self.type == "bool":
                if number not in (0, 1):
                    raise ValueError(f"out of range; allowed: {self.allowed()}")
                return bool(number)
            assert self.minimum is not None and self.maximum is not None
            if not self.minimum <= number <= self.maximum:
                raise ValueError(f"out of range; allowed: {self.allowed()}")
            return number
        if self.type == "choice":
            for choice in self.choices:
                if str(choice).upper() == raw.upper():
                    return choice
            raise ValueError(f"not one of the choices; allowed: {self.allowed()}")
        if self.type == "ip":
            if raw == "" and self.default == "":
                return ""
            try:
                ipaddress.IPv4Address(raw)
            except ValueError:
                raise ValueError(f"not an IPv4 address; allowed: {self.allowed()}") from None
            return raw
        if self.type == "mask":
            digits = raw[2:] if raw.lower().startswith("0x") else raw
            charset = self.charset or "0123456789ABCDEFabcdef"
            wrong_length = len(digits) > (self.max_length or 0) or (not self.padded and len(digits) != self.max_length)
            if not digits or any(c not in charset for c in digits) or wrong_length:
                raise ValueError(f"not a hex mask; allowed: {self.allowed()}")
            return raw
        if self.max_length is not None and len(raw) > self.max_length:
            raise ValueError(f"{len(raw)} characters; allowed: {self.allowed()}")
        if self.type == "port" and "://" in raw:
            scheme, _, rest = raw.partition("://")
            if scheme.lower() not in PORT_SCHEMES:
                raise ValueError(f"unknown port URL scheme {scheme!r}; allowed: {self.allowed()}")
            if scheme.lower() in ("socket", "rfc2217"):
                host, _, port = rest.partition("?")[0].partition("/")[0].rpartition(":")
                if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                    raise ValueError(f"{scheme}:// needs HOST:PORT with PORT 1..65535; allowed: {self.allowed()}")
        return raw

    def format(self, value: Value) -> str:
        """The file's spelling of a typed value (booleans as 0/1)."""
        if isinstance(value, bool):
            return "1" if value else "0"
        return str(value)

    def text_of(self, value: object) -> str:
        """The file's spelling of ``value``: text as it is, booleans as 0/1, a mask given as a number in hex."""
        if isinstance(value, str):
            return value
        if self.type == "mask" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return f"0x{value:0{self.max_length or 1}X}"
        if isinstance(value, bool | int):
            return self.format(value)
        return str(value)

    def check(self, value: object, *, file: str | None = None, line: int | None = None) -> Value:
        """The typed value of ``value`` (text as in chip.ini, or a typed value such as 38400 or True).

        Anything this parameter does not allow is a ConfigError ``NAME='value': why; allowed: ...``, with
        ``file`` and ``line`` in front where given.
        """
        text = self.text_of(value)
        try:
            return self.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{self.name}={self.shown(text)}: {exc}", file=file, line=line) from None

    def shown(self, text: str) -> str:
        """``text`` as a message may show it: a secret masked, anything long cut (a 50 MB value stays a line)."""
        from sonocli.errors import shown_value

        return shown_value(text, secret=self.secret)


def _int(group: str, name: str, lo: int, hi: int, default: int, help: str, tab: str, note: str = "") -> Param:
    return Param(group, name, "int", default, help, tab, minimum=lo, maximum=hi, default_note=note)


def _bool(group: str, name: str, default: bool, help: str, tab: str) -> Param:
    return Param(group, name, "bool", default, help, tab)


def _text(group: str, name: str, default: str, help: str, tab: str, length: int = 40) -> Param:
    return Param(group, name, "text", default, help, tab, max_length=length)


def _choice(group: str, name: str, choices: tuple[str | int, ...], default: str | int, help: str, tab: str) -> Param:
    return Param(group, name, "choice", default, help, tab, choices=choices)


def _port(name: str, help: str) -> Param:
    return Param("CONFIG", name, "port", "", help, "sonocli", max_length=200)


def _ip(group: str, name: str, default: str, help: str, tab: str) -> Param:
    return Param(group, name, "ip", default, help, tab)


def _mask(
    group: str, name: str, digits: int, default: str, help: str, charset: str = "", padded: bool = False
) -> Param:
    return Param(group, name, "mask", default, help, "configuration", max_length=digits, charset=charset,
                 padded=padded)


_IP, _DEV, _C = "IP", "DEVICE", "CONFIG"
_G, _K, _S, _SEC, _OWN = "general", "configuration", "server", "security", "sonocli"
_WMODES: tuple[str | int, ...] = ("R2_OTHER_REQ", "S2_REQ", "T1_OTHER_REQ", "T2_OTHER_REQ", "C1_OTHER_REQ")
_SCANMODES: tuple[str | int, ...] = (
    "PRIMARYSCAN",
    "SECONDARYSCAN",
    "SECONDARYSCANALLOC",
    "SECONDARYSCANREVERSE",
    "SECONDARYSCANALLOCREVERSE",
)
_DONGLES: tuple[str | int, ...] = ("", *dongle_names())  # empty: not set
_BAUDS: tuple[str | int, ...] = BAUD_RATES

# Parameters of Table 25 that sonocli accepts, validates and keeps but does not act on, with the reason.
# ``config show``, ``config check``, ``config set`` and the man page say so; tests/unit/test_parameter_effects.py
# checks that exactly these are the parameters no code outside this schema reads.
_DEVICE_NETWORK = "a network setting of the device; the operating system configures this computer's network"
_SNTP = "the device's time service; the operating system keeps this computer's clock (NTP)"
NO_EFFECT: dict[str, str] = {
    "ADDRESS": _DEVICE_NETWORK,
    "NETMASK": _DEVICE_NETWORK,
    "GATEWAY": _DEVICE_NETWORK,
    "DHCP": _DEVICE_NETWORK,
    "TCPIPMEM": "the memory of the device's embedded web server; a computer needs no such limit",
    "NAME": "the device's name for CHIPtool discovery; sonocli is not discovered by CHIPtool",
    "MBUS_DISABLEDECRYPTION": "sonocli never decrypts wired M-Bus data: an encrypted payload is reported, not decoded",
    "METER_RETRYDIVIDER": "the daemon has no separate retry timer: a meter that failed is read again at its next "
    "readout (METER_TIME)",
    "METER_STAT_CONFIG": "the meter list is always <root>/app/device_handle.cfg",
    "MUC_SHOWVENDORRAWDATA": "manufacturer-specific data are never listed as meter values",
    "MUC_SHOWVENDORRAWDATAWEB": "binary data (vendor-specific, containers) are never shown in sonocli's meter list",
    "SNTP_ENABLE": _SNTP,
    "SNTP_MAXTIMEOUT": _SNTP,
    "SNTP_MINTIMEOUT": _SNTP,
    "SNTP_REQTIMEOUT": _SNTP,
    "SNTP_IP": _SNTP,
    "TLS_DEBUGOUT": "the device's debug output; sonocli logs deliveries with -v (the daemon with MUC_LOG=ALL)",
    "WMBUS_DEBUGOUT": "the device's debug output; use -vv (the daemon: MUC_LOG=ALL) and WMBUS_RAWLOGENABLE",
    "WMBUS2_DEBUGOUT": "the device's debug output; use -vv (the daemon: MUC_LOG=ALL) and WMBUS_RAWLOGENABLE",
    "XMLTOTCP_DEBUGOUT": "the device's debug output; sonocli logs deliveries with -v (the daemon with MUC_LOG=ALL)",
}

_TABLE: tuple[Param, ...] = (
    # [IP]
    _ip(_IP, "ADDRESS", "192.168.1.101", "IP address of the device.", _G),
    _ip(_IP, "NETMASK", "255.255.255.0", "Subnet mask of the device.", _G),
    _ip(_IP, "GATEWAY", "192.168.1.254", "Gateway address of the device.", _G),
    _bool(_IP, "DHCP", False, "Enables DHCP look-up.", _G),
    _int(_IP, "TCPIPMEM", 60, 1000, 280, "Memory for the web server in kB.", _G),
    # [DEVICE]
    _text(_DEV, "NAME", "SonoCollect_111", "Name of the device (shown in CHIPtool).", _G, 20),
    # [CONFIG]
    _int(
        _C, "FASTRESCAN_TIME", 1, U32, 60, "Update interval of the temporary wM-Bus meter list (new meters), in s.", _K
    ),
    _bool(_C, "FTP_ENABLE", False, "Enables FTP upload via the WAN interface (push).", _S),
    _text(_C, "FTP_FILEBASENAME", "SonoCollect_111", "Base file name for FTP upload.", _S),
    _text(_C, "FTP_IP", "", "Address of the remote FTP server.", _S),
    _ip(_C, "FTP_LOCALIP", "", "External local IP for FTP passive mode (empty: the internal IP).", _S),
    Param(_C, "FTP_PASS", "text", "", "Password for the remote FTP server.", _S, max_length=40, secret=True),
    _bool(_C, "FTP_PASSIVE", True, "FTP passive mode.", _S),
    _text(_C, "FTP_PATH", "", "Directory on the remote FTP server for the log data.", _S),
    _int(_C, "FTP_PORT", 0, U16, 21, "Port of the remote FTP server.", _S),
    _int(_C, "FTP_TIMEOUTSCALE", 1, 20, 1, "Scale factor for the FTP client timeouts (2 doubles all timeouts).", _S),
    _text(_C, "FTP_USER", "", "User name for the remote FTP server.", _S),
    _choice(
        _C,
        "MBUS_BAUDRATE",
        _BAUDS,
        2400,
        "Baud rate for serial M-Bus communication (the guide allows 300..19200; sonocli also allows 38400 "
        "for USB level converters).",
        _K,
    ),
    _choice(_C, "MBUS_DATABITS", (7, 8), 8, "Data bits for serial M-Bus communication.", _K),
    _bool(
        _C,
        "MBUS_DEBUGOUT",
        False,
        "Enables output of raw data to STDOUT (sonocli: each wired frame in hex as a DEBUG log line on stderr, "
        "which keeps stdout for data).",
        _K,
    ),
    _bool(_C, "MBUS_DISABLEDECRYPTION", False, "Disables the decryption of M-Bus messages (status field).", _K),
    _bool(_C, "MBUS_ENABLE", True, "Enables the M-Bus interface.", _K),
    _bool(
        _C, "MBUS_FIRSTFCBBIT_NEG", False, "First FCB bit of a meter request (0: first FCB bit set, 1: not set).", _K
    ),
    _int(_C, "MBUS_FREEZESTORAGEENUM", 0, U32, 0, "Storage number for meter data on a Freeze command.", _K),
    _int(_C, "MBUS_FULLTIMEOUT", 0, U16, 10000, "Maximum time for the readout of one meter, in ms.", _K),
    _int(_C, "MBUS_IDLETIMEOUT", 0, U16, 100, "Idle time that ends a meter's transmission, in ms.", _K),
    _int(_C, "MBUS_MAXMULTIPAGE", 0, 255, 10, "Limits the number of pages of a multipage request.", _K),
    _int(_C, "MBUS_MAXPRIMARYADDRESS", 0, 250, 250, "Upper limit of the address range for the primary scan.", _K),
    _int(_C, "MBUS_MAXRETRY", 0, 255, 3, "Number of retries of an M-Bus or multipage request.", _K),
    _int(_C, "MBUS_MINPRIMARYADDRESS", 0, 250, 0, "Lower limit of the address range for the primary scan.", _K),
    _int(_C, "MBUS_PARITY", 0, 4, 2, "M-Bus parity: 0 none, 1 odd, 2 even, 3 mark, 4 space.", _K),
    _bool(
        _C,
        "MBUS_RAWLOGENABLE",
        False,
        "Enables the raw data log on /ext (sonocli: ext/log/mbus_raw.log, every wired frame sent and received "
        "as TIME;TX|RX;HEX, time in UTC).",
        _K,
    ),
    _choice(
        _C, "MBUS_REQUESTMODE", ("DEFAULT", "EXT", "ONLY", "FREEZE"), "DEFAULT", "Request sequence for the readout.", _K
    ),
    _int(
        _C,
        "MBUS_RESETMODE",
        0,
        4,
        0,
        "Reset mode: 0 NKE after select, 1 NKE before select, 2 no reset, 3 NKE to FD and FF first, "
        "4 NKE to FD, application reset and NKE to FF first.",
        _K,
    ),
    _choice(_C, "MBUS_SCANMODE", _SCANMODES, "SECONDARYSCAN", "Scan mode for M-Bus.", _K),
    _mask(_C, "MBUS_SECMASKMANUFACTURER", 4, "0xFFFF", "Manufacturer ID for the secondary scan (0xFFFF: any)."),
    _mask(_C, "MBUS_SECMASKMEDIUM", 2, "0xFF", "Medium for the secondary scan (0xFF: any)."),
    _mask(
        _C,
        "MBUS_SECMASKSERIAL",
        8,
        "0xFFFFFFFF",
        "Serial number mask for the secondary scan: up to 8 characters 0-9, A-E (hex ID digits) and F (wildcard);"
        " fewer are filled up with leading zeros (084F is 0000084F).",
        "0123456789ABCDEFabcdef",
        padded=True,
    ),
    _mask(_C, "MBUS_SECMASKVERSION", 2, "0xFF", "Version for the secondary scan (0xFF: any)."),
    _int(
        _C,
        "MBUS_SELECTMASK",
        0,
        15,
        0,
        "Parts of the secondary address replaced by wildcards on selection: +1 serial, +2 manufacturer, "
        "+4 version, +8 medium.",
        _K,
    ),
    _bool(_C, "MBUS_SMLENEABLE", False, "Enables processing of SML data within M-Bus frames.", _K),
    _choice(_C, "MBUS_STOPBITS", (1, 2), 1, "Stop bits for serial M-Bus communication.", _K),
    _int(_C, "MBUS_TIMEOUT", 0, U16, 2000, "M-Bus timeout until the first byte of an answer, in ms.", _K),
    _bool(_C, "MBUS_WAKEUPENABLE", False, "Enables a specific wake-up request.", _K),
    _int(_C, "METER_DELAY", 0, U32, 0, "Delays a due readout by N seconds.", _K),
    _int(_C, "METER_MAXALLVALUECOUNT", 0, U16, 0, "Limits the total number of meter values (0: no limit).", _K),
    _int(_C, "METER_MAXDEVICECOUNT", 0, U16, 80, "Limits the number of meters (0: no limit).", _K),
    _int(_C, "METER_MAXVALUECOUNT", 0, U16, 25, "Limits the number of values per meter (0: no limit).", _K),
    _int(_C, "METER_RETRYDIVIDER", 0, U16, 0, "Divider for the retry timeout (relative to the readout interval).", _K),
    _text(_C, "METER_STAT_CONFIG", "/app/device_handle.cfg", "Path of the meter configuration file.", _K),
    _int(_C, "METER_TIME", 10, U32, 900, "Interval of the meter readout, in s.", _K),
    _int(_C, "MUC_CONFIG_VER", 1, 5, 5, "Version of the configuration file.", _K),
    _bool(_C, "MUC_CSVLOG_ENABLE", False, "Enables logging CSV data to /ext.", _K),
    _choice(_C, "MUC_LOG", ("DEFAULT", "NONE", "ERRORONLY", "ALL"), "DEFAULT", "Level of system output to STDOUT.", _K),
    _int(
        _C,
        "MUC_METERDESCRIPTIONENABLEFLAGS",
        0,
        16,
        1,
        "Description mode of the meter list: bit 0 description, bit 1 storage number, tariff and value "
        "type, bit 2 DIF/VIF raw data, bit 3 complete raw data of the value.",
        _K,
    ),
    _int(
        _C,
        "MUC_PROTOCOL_VER",
        0,
        7,
        3,
        "Protocol version of CSV and XML data. Table 25 says 0-5, but Tables 20 and 22 define versions 6 and 7 "
        "too, so sonocli accepts 0-7.",
        _K,
    ),
    _bool(_C, "MUC_SCALEVALUES", False, "Scales the meter values in CSV and XML files.", _K),
    _choice(_C, "MUC_SETDEVICES", ("S0", "ALL", "NONE"), "S0", "Enables writing data to meters (if supported).", _K),
    _bool(_C, "MUC_SHOWTIMESTAMPENTRIES", False, "Shows the meters' timestamps as values.", _K),
    _bool(_C, "MUC_SHOWVENDORRAWDATA", False, "Lists vendor-specific data as a meter value.", _K),
    _bool(
        _C, "MUC_SHOWVENDORRAWDATAWEB", False, "Shows binary data (vendor-specific, containers) in the meter list.", _K
    ),
    _bool(_C, "MUC_USE_FREEZE", False, "Sends the Freeze command before a meter readout.", _K),
    _int(_C, "REPORT_DELAY", 0, U32, 0, "Delay before a new data report starts, in min.", _S),
    _int(
        _C,
        "REPORT_RANDOMDELAY",
        0,
        U32,
        0,
        "Additional random delay of a report, in min (0: 12.5 % of the report interval).",
        _S,
    ),
    _int(_C, "REPORT_SIZELIMIT", 1, U32, 500000, "Maximum size of a report log file, in bytes.", _S),
    _int(_C, "REPORT_TIME", 1, U32, 15, "Interval of reports via the WAN interface, in min.", _S),
    _bool(_C, "SHOW_KEYS", True, "Shows encryption keys in plain text.", _K),
    _bool(_C, "SMTP_ENABLE", False, "Enables sending reports by email (SMTP).", _S),
    _text(_C, "SMTP_FROMADDRESS", "", "Sender address of the emails.", _S),
    _text(_C, "SMTP_IP", "", "Address of the SMTP server.", _S),
    Param(_C, "SMTP_PASSWORD", "text", "", "Password for the SMTP server.", _S, max_length=40, secret=True),
    _text(_C, "SMTP_SUBJECTBASENAME", "SonoCollect 111", "Base of the email subject.", _S),
    _int(_C, "SMTP_TIMEOUTSCALE", 1, 20, 1, "Scale factor for the SMTP timeouts (2 doubles all timeouts).", _S),
    _text(_C, "SMTP_TOADDRESS", "", "Receiver address of the emails.", _S),
    _text(_C, "SMTP_USER", "", "User name for the SMTP server.", _S),
    _bool(_C, "SNTP_ENABLE", True, "Obtains the system time via SNTP.", _G),
    _int(_C, "SNTP_MAXTIMEOUT", 1, U32, 93600, "Maximum interval of time retrieval, in ms.", _G),
    _int(
        _C, "SNTP_MINTIMEOUT", 1, U32, 79200, "Minimum interval of time retrieval (during data transport), in ms.", _G
    ),
    _int(_C, "SNTP_REQTIMEOUT", 1, U16, 30000, "Timeout of a whole SNTP request, in ms.", _G),
    _text(_C, "SNTP_IP", "ptbtime1.ptb.de", "Address of the time server (SNTP).", _G),
    _text(_C, "TLS_CLI_CERT_FILE", "/app/clcert.pem", "Path of the client certificate (RFC 3280).", _SEC),
    _text(_C, "TLS_CLI_KEY_FILE", "/app/clikey.pem", "Path of the client key (RFC 5958).", _SEC),
    _bool(_C, "TLS_DEBUGOUT", False, "Debug output of the TLS interface.", _S),
    _int(_C, "TLS_DISCONNECTTIMEOUT", 1, 1000, 60, "Socket timeout for closing connections, in s.", _S),
    _bool(_C, "TLS_ENABLE", False, "Activates the TLS interface.", _S),
    _text(_C, "TLS_IP", "", "Address of the remote TLS server.", _S),
    _int(_C, "TLS_PORT", 0, U16, 443, "TCP port of the remote TLS server.", _S),
    _text(_C, "TLS_ROOT_CERT_FILE", "/app/cacert.pem", "Path of the root certificate (RFC 4945).", _SEC),
    _text(_C, "TLS_SITE", "", "HTTP path of the request; empty: no HTTP header is sent.", _S),
    _int(_C, "TLS_TIMEOUT", 1, U16, 30000, "Timeout of a TLS request, in ms.", _S),
    _int(_C, "WATCHDOG_IDLE", 1, U32, 120, "Watchdog timeout while idle, in s.", _K),
    _int(_C, "WATCHDOG_PROCESS", 1, U32, 900, "Watchdog timeout while busy, in s.", _K),
    _int(
        _C,
        "WATCHDOG_READOUT",
        1,
        U32,
        3600,
        "Watchdog timeout during a readout, in s.",
        _K,
        note="4 x METER_TIME, at least WATCHDOG_PROCESS",
    ),
    _int(_C, "WATCHDOG_SCAN", 1, U32, 1800, "Watchdog timeout during a scan, in s.", _K),
    _int(_C, "WEBCOM_TIMEOUT", 1, U32, 30000, "Web session timeout (automatic logout), in ms.", _SEC),
    _int(_C, "WMBUS_CACHESIZE", 1, 500, 500, "Number of received wM-Bus frames kept in the cache.", _K),
    _int(_C, "WMBUS_CACHETIMEOUT", 0, U32, 0, "Retention time of received wM-Bus packets, in s (0: no timeout).", _K),
    _bool(_C, "WMBUS_DEBUGOUT", False, "Enables output of raw data to syslog.", _K),
    _bool(_C, "WMBUS_ENABLE", True, "Enables the wM-Bus interface.", _K),
    _choice(
        _C,
        "WMBUS_MODE",
        _WMODES,
        "T2_OTHER_REQ",
        "Mode of the wM-Bus interface (C1_OTHER_REQ is a sonocli extension for OMS C1 meters).",
        _K,
    ),
    _bool(_C, "WMBUS_RAWLOGENABLE", False, "Enables the raw data log on /ext.", _K),
    _bool(_C, "WMBUS_SMLENEBALE", False, "Enables processing of SML data within wM-Bus frames.", _K),
    _bool(_C, "WMBUS2_DEBUGOUT", False, "Enables output of raw data of the 2nd wM-Bus interface to syslog.", _K),
    _choice(_C, "WMBUS2_MODE", _WMODES, "T2_OTHER_REQ", "Mode of the 2nd wM-Bus interface.", _K),
    _bool(_C, "XMLTOTCP_DEBUGOUT", False, "Debug output of sent data.", _S),
    _int(_C, "XMLTOTCP_DISCONNECTTIMEOUT", 1, 1000, 60, "Socket timeout for closing connections, in s.", _S),
    _bool(_C, "XMLTOTCP_ENABLE", False, "Enables transferring XML data via TCP.", _S),
    _text(_C, "XMLTOTCP_IP", "", "Address of the remote TCP server (empty: the device is the server).", _S),
    _int(_C, "XMLTOTCP_PORT", 0, U16, 0, "Port of the remote TCP server.", _S),
    _text(_C, "XMLTOTCP_SITE", "", "HTTP path of the request; empty: pure TCP without HTTP header.", _S),
    _int(_C, "XMLTOTCP_TIMEOUT", 0, U16, 0, "Timeout of the TCP connection, in ms (0: no timeout).", _S),
    # sonocli's own: a PC has no fixed hardware, so the interfaces are named here.
    _port(
        "MBUS_PORT",
        "sonocli: wired M-Bus interface as a port URL (/dev/ttyUSB0, socket://host:port, "
        "sim://demo); the default of every command's --port.",
    ),
    _port("WMBUS_PORT", "sonocli: port URL of the 1st wireless M-Bus receiver."),
    _choice(
        _C,
        "WMBUS_DONGLE",
        _DONGLES,
        "",
        f"sonocli: framing of the 1st receiver ({', '.join(dongle_names())}; empty: not set).",
        _OWN,
    ),
    _port("WMBUS2_PORT", "sonocli: port URL of the 2nd wireless M-Bus receiver."),
    _choice(_C, "WMBUS2_DONGLE", _DONGLES, "", "sonocli: framing of the 2nd receiver (as WMBUS_DONGLE).", _OWN),
    # The guide's "wM-Bus listen" switch (tab Configuration, Table 10) has no chip.ini row in Table 25.
    _bool(
        _C,
        "WMBUS_LISTEN",
        True,
        "sonocli: the tab Configuration switch 'wM-Bus listen': meters not in the meter list are recognised and "
        "kept in the temporary list (sonocli meters heard); 0: they are ignored.",
        _OWN,
    ),
    # sonocli's own: one concentrator among many, and MQTT into an existing broker (README "Many concentrators").
    _text(_C, "MUC_ID", "", "sonocli: this concentrator's MUC-ID in hex (empty: from /etc/machine-id).", _OWN, 8),
    _bool(_C, "MQTT_ENABLE", False, "sonocli: publish every reading to an MQTT broker.", _OWN),
    _text(_C, "MQTT_IP", "", "sonocli: the MQTT broker's host name or address; mqtts://host for TLS.", _OWN, 200),
    _int(_C, "MQTT_PORT", 0, U16, 0, "sonocli: the broker's port.", _OWN, "0: 1883, 8883 for mqtts://"),
    _text(_C, "MQTT_USER", "", "sonocli: user name at the broker (empty: none).", _OWN, 200),
    replace(_text(_C, "MQTT_PASS", "", "sonocli: password at the broker.", _OWN, 200), secret=True),
    _text(_C, "MQTT_TOPIC", "sonocli/{muc_id}", "sonocli: topic prefix ({muc_id}: the MUC-ID in hex); checked "
          "when publishing (no + or #), so a bad topic stops only the MQTT channel.", _OWN, 200),
    _int(_C, "MQTT_QOS", 0, 2, 1, "sonocli: MQTT quality of service; 1 and 2 wait for the broker.", _OWN),
    _bool(_C, "MQTT_RETAIN", False, "sonocli: the broker keeps each meter's latest reading.", _OWN),
    _bool(_C, "MQTT_HA_DISCOVERY", False, "sonocli: Home Assistant discovery messages per active value.", _OWN),
    _text(_C, "MQTT_ROOT_CERT_FILE", "", "sonocli: CA certificate of mqtts:// (empty: the system's).", _OWN, 200),
    _text(_C, "MQTT_CLI_CERT_FILE", "", "sonocli: client certificate for mqtts:// (empty: none).", _OWN, 200),
    _text(_C, "MQTT_CLI_KEY_FILE", "", "sonocli: key of the client certificate.", _OWN, 200),
    # sonocli's own: the web interface and the FTP server of the logs (guide chapter 4, sections 4.6, 5.2.2, 7.3).
    _bool(_C, "WEB_ENABLE", False, "sonocli: serve-daemon serves the web interface and /api (web extra).", _OWN),
    _ip(_C, "WEB_IP", "127.0.0.1", "sonocli: address the web interface listens on (0.0.0.0: every one).", _OWN),
    _int(_C, "WEB_PORT", 1, U16, 8080, "sonocli: port of the web interface.", _OWN),
    _text(_C, "WEB_CERT_FILE", "", "sonocli: certificate (PEM) for HTTPS and FTPS (empty: plain HTTP).", _OWN, 200),
    _text(_C, "WEB_KEY_FILE", "", "sonocli: key (PEM) of WEB_CERT_FILE.", _OWN, 200),
    _bool(_C, "FTPD_ENABLE", False, "sonocli: Security tab 'FTP server active': log access over FTP(S).", _OWN),
    _ip(_C, "FTPD_IP", "127.0.0.1", "sonocli: address the FTP server listens on.", _OWN),
    _int(_C, "FTPD_PORT", 1, U16, 2121, "sonocli: port of the FTP server (21 needs root).", _OWN),
    # sonocli's own: secrets on the wire (issue 13) - plain SMTP only when asked, the pull server's address.
    _bool(_C, "SMTP_ALLOWPLAIN", False, "sonocli: 1 allows the SMTP login without TLS when the server offers no "
          "STARTTLS (the password goes in clear; warned at every delivery).", _OWN),
    _ip(_C, "XMLTOTCP_LISTENIP", "127.0.0.1", "sonocli: address the XML pull server (XMLTOTCP_IP empty) listens "
        "on (0.0.0.0: every interface).", _OWN),
    _bool(_C, "XMLTOTCP_LISTENTLS", False, "sonocli: the pull server speaks TLS with TLS_CLI_CERT_FILE and "
          "TLS_CLI_KEY_FILE and accepts only clients with a certificate signed by TLS_ROOT_CERT_FILE.", _OWN),
    # sonocli's own: bounds of what ext/ holds (issue 13), enforced oldest first with a warning counting the drops.
    _int(_C, "STORE_MAXREADINGS", 100, 10**9, 1_000_000, "sonocli: most readings kept in the database; the oldest "
         "(those already in every channel's reports first) are deleted beyond it.", _OWN),
    _int(_C, "STORE_COMMITINTERVAL", 1, 3600, 30, "sonocli: seconds a reading taken by serve-daemon waits at most "
         "in memory for its database transaction (readings are stored together to spare the flash); a crash or "
         "power cut loses at most this span of readings not yet stored.", _OWN),
    _int(_C, "OUTBOX_MAXITEMS", 10, 10**7, 2000, "sonocli: most reports kept in the outbox; beyond it the oldest "
         "delivered ones are deleted first, then dropped ones, then the oldest undelivered.", _OWN),
    _int(_C, "CSVLOG_MAXSIZE", 64, 2**31 - 1, 262144, "sonocli: most KiB all CSV log files (MUC_CSVLOG_ENABLE) "
         "may take together; the oldest files are deleted beyond it (the newest is always kept).", _OWN),
    # sonocli's own: the DLDE (IEC 62056-21) meter interface (issue 18).
    _port("DLDE_PORT", "sonocli: DLDE (IEC 62056-21) interface as a port URL (optical head, RS-485; sim://dlde); "
          "the daemon reads the DLDE meters of the meter list on it, the default of readout --protocol dlde."),
    _choice(_C, "DLDE_BAUDRATE", tuple(b for b in _BAUDS if int(b) <= 19200), 19200, "sonocli: the highest baud "
            "rate accepted from a DLDE meter in mode C (the sign-on is at 300 baud).", _OWN),
    _int(_C, "DLDE_TIMEOUT", 200, 10000, 2000, "sonocli: DLDE timeout until the first byte of an answer, in ms.", _OWN),
    # sonocli's own: SML meters pushing on a serial port, S0 pulse inputs on GPIO lines (issue 18).
    _port("SML_PORT", "sonocli: SML interface as a port URL (an IR head on an eHZ/EDL21 meter; sim://sml); the "
          "daemon records each SML meter once per readout cycle, the default of listen --protocol sml."),
    _choice(_C, "SML_BAUDRATE", tuple(b for b in _BAUDS if int(b) <= 115200), 9600, "sonocli: baud rate of "
            "SML_PORT (8N1).", _OWN),
    _int(_C, "SML_TIMEOUT", 1000, 60000, 10000, "sonocli: how long a readout listens on SML_PORT for a valid "
         "file of each SML meter, in ms.", _OWN),
    _text(_C, "S0_GPIOCHIP", "/dev/gpiochip0", "sonocli: the GPIO chip of the S0 inputs (libgpiod, gpiod "
          "package).", _OWN, 200),
    _text(_C, "S0_LINES", "", "sonocli: GPIO line of each S0 input, CHANNEL=LINE[,...] (line offset or "
          "name; the channel is the S0 meter's primary address); a meter's <gpio> element overrides it.",
          _OWN, 200),
    _choice(_C, "S0_EDGE", ("falling", "rising"), "falling", "sonocli: the S0 pulse edge counted.", _OWN),
    _int(_C, "S0_DEBOUNCE", 0, 1000, 10, "sonocli: debounce period of the S0 inputs, in ms (EN 62053-31 "
         "pulses last at least 30 ms).", _OWN),
)

PARAMETERS: tuple[Param, ...] = tuple(
    replace(p, no_effect=NO_EFFECT[p.name]) if p.name in NO_EFFECT else p for p in _TABLE
)

GROUPS: tuple[str, ...] = ("IP", "DEVICE", "CONFIG")


def by_name() -> dict[str, Param]:
    """Parameters by upper-case name (built per call: no module-level mutable state)."""
    return {param.name: param for param in PARAMETERS}


def param(name: str) -> Param:
    """The parameter ``name`` (any case); ConfigError for a name the schema does not know."""
    found = by_name().get(name.strip().upper())
    if found is None:
        raise ConfigError(f"unknown parameter {name!r}", hint="sonocli config show lists them")
    return found


def check_setting(name: str, value: object) -> Value:
    """The typed value of parameter ``name`` for ``value``, checked by the schema's own rule.

    One check for chip.ini lines, ``config set`` and command options overriding a parameter: ``--baud 1234``
    fails as ``config set MBUS_BAUDRATE 1234`` does, ``MBUS_BAUDRATE='1234': not one of the choices;
    allowed: 300, ...``. ``value`` is text as in the file or a typed value (38400, True, a mask as a number).
    """
    return param(name).check(value)


def mask_digits(text: str) -> str:
    """The digits of a checked mask value, upper case, without ``0x`` (``0x2c2d`` -> ``2C2D``)."""
    raw = text.strip()
    return (raw[2:] if raw.lower().startswith("0x") else raw).upper()


def mask_number(text: str) -> int:
    """A checked hex mask value as a number (``0xFFFF`` -> 65535)."""
    return int(mask_digits(text), 16)
