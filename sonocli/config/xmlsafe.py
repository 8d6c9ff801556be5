"""Hardened XML reading for the meter-list loader: no entities, no DTD, no network, no deep trees.

expat (the standard library's) is imported inside the parse, so that importing sonocli stays light.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from sonocli.config.textfile import decode_utf8
from sonocli.errors import ConfigError

# Patterns, compiled on first use (re caches them): a command that only reads the meter list never
# compiles the writer's, and importing this module compiles nothing.
_DECL_ENCODING = rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']"
_DTD = rb"(?i)<!(DOCTYPE|ENTITY)"
# The characters XML 1.0 forbids (its Char production, negated): named positively, the class compiles in
# 0.5 ms instead of the 5 ms of the negated one.
_XML_CHAR = "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]"


def check_utf8(data: bytes, file: str | None) -> str:
    """The text of ``data``; ConfigError naming the line when it is not UTF-8 or declares another encoding."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    text = decode_utf8(body, file, "the guide requires device_handle.cfg to be saved as UTF-8")
    declared = re.match(_DECL_ENCODING, body)
    if declared and declared.group(1).decode("ascii").lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise ConfigError(
            f"declares encoding {declared.group(1).decode('ascii')!r}; only UTF-8 is allowed",
            file=file,
            line=1,
        )
    return text


class Node:
    """An element, comment or processing instruction of a parsed document: what the meter-list reader needs.

    ``tag`` is the element's name, or ``"#comment"`` / ``"#pi"``; iterating gives the children (comments
    and PIs included, as lxml does); ``text`` is the text before the first child; ``sourceline`` the line
    of the start tag; :meth:`raw` the node's exact source text, so an element sonocli does not know is
    written back as it was found.

    Lean on purpose: most nodes of a meter list are leaves (``<unit>Wh</unit>``), and a leaf holds its text
    and no list; the list of parts (text and children in document order) is made with the first child, and
    the children are read from it. 500 meters with 15 values each are ~80,000 nodes; two empty lists per
    leaf were half the tree.
    """

    __slots__ = ("_end", "_parts", "_source", "_start", "_text", "sourceline", "tag")

    def __init__(self, tag: str, sourceline: int, source: bytes, start: int) -> None:
        self.tag = tag
        self.sourceline = sourceline
        self._text = ""  # the text so far, while there is no child
        self._parts: list[str | Node] | None = None  # text and children in order, from the first child on
        self._source = source
        self._start = start
        self._end = -1  # expat's position at the end event (elements); the raw text is found from it on use

    @property
    def is_element(self) -> bool:
        return not self.tag.startswith("#")

    @property
    def text(self) -> str:
        if self._parts is None:
            return self._text
        first = self._parts[0]
        return first if isinstance(first, str) else ""

    def __iter__(self) -> Iterator[Node]:
        """The children: elements, comments and PIs (not the text between them)."""
        if self._parts is None:
            return iter(())
        return iter([part for part in self._parts if part.__class__ is Node and part is not _HANDED_ON])

    def text_content(self) -> str:
        """``"".join(itertext())``, at once for a leaf (the meter list's fields)."""
        return self._text if self._parts is None else "".join(self.itertext())

    def itertext(self) -> Iterator[str]:
        """The text of the element and of the elements inside it, in document order (not comments)."""
        if self._parts is None:
            if self._text:
                yield self._text
            return
        for part in self._parts:
            if isinstance(part, str):
                yield part
            elif part.is_element:
                yield from part.itertext()

    def _add_child(self, child: Node | None) -> None:
        """Append ``child``; None marks that a child was here and handed on (streamed) instead of kept."""
        if self._parts is None:
            self._parts = [self._text] if self._text else []
            self._text = ""
        if child is not None:
            self._parts.append(child)
        elif not self._parts or self._parts[-1] is not _HANDED_ON:
            self._parts.append(_HANDED_ON)  # what follows is no longer the text before the first child

    def raw(self) -> str:
        """The node's source text, verbatim (start tag to end tag, ``<!--...-->``, ``<?...?>``)."""
        data, start = self._source, self._start
        if self.tag == "#comment":
            end = data.index(b"-->", start) + 3
        elif self.tag == "#pi":
            end = data.index(b"?>", start) + 2
        else:
            tag = re.compile(_START_TAG).match(data, start)
            empty = tag is not None and tag.group(1)  # <empty/>: expat's end position is already past it
            end = tag.end() if tag is not None and empty else data.index(b">", self._end) + 1
        return data[start:end].decode("utf-8")


_HANDED_ON = Node("#handed-on", 0, b"", 0)  # in a parent's parts: children were here, handed to each_child

_START_TAG = rb"""<[^\s/>]+(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*(/?)>"""
MAX_DEPTH = 256  # as libxml2 without XML_PARSE_HUGE: a meter list is four levels deep
MAX_TEXT = 10_000_000  # characters in one text node, libxml2's limit likewise


def parse_document(data: bytes, file: str | None, each_child: Callable[[Node], None] | None = None) -> Node:
    """Parse ``data`` with expat, resolving no entities and loading nothing; returns the root element.

    A document type declaration is refused outright: the meter list never needs one, and refusing it
    stops entity-expansion bombs (billion laughs) and external entities before the parser sees them.
    The standard library's expat rather than lxml: every command that reads the meter list (`listen`
    before its first telegram) saved lxml's ~5 ms import; lxml is still what writes the XML exports.

    With ``each_child``, every child of the root (element, comment or PI) is handed to it as soon as it is
    complete, and not kept in the root: a 500-meter list is then never in memory as one tree (its peak was
    ~16x the file's size), only one meter at a time. An exception it raises ends the parse.
    """
    check_utf8(data, file)
    dtd = re.search(_DTD, data)
    if dtd is not None:
        line = data[: dtd.start()].count(b"\n") + 1
        raise ConfigError(
            "DOCTYPE/ENTITY declarations are not allowed (entity expansion is refused)", file=file, line=line
        )
    from xml.parsers import expat

    parser = expat.ParserCreate()
    parser.buffer_text = True
    stack: list[Node] = []
    found: list[Node] = []

    # The handlers run once per element and text run (~150,000 times for 500 meters): they are most of what
    # reading a large meter list costs, so text() is written flat.
    def start(tag: str, _attributes: dict[str, str]) -> None:
        node = Node(tag, parser.CurrentLineNumber, data, parser.CurrentByteIndex)
        depth = len(stack)
        if depth:
            if each_child is None or depth > 1:
                stack[-1]._add_child(node)
            if depth >= MAX_DEPTH:
                raise ConfigError(f"elements nested deeper than {MAX_DEPTH}", file=file, line=node.sourceline)
        elif not found:
            found.append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        node = stack.pop()
        node._end = parser.CurrentByteIndex
        if each_child is not None and len(stack) == 1:
            stack[0]._add_child(None)
            each_child(node)

    def text(chunk: str) -> None:
        if not stack:
            return
        node = stack[-1]
        parts = node._parts
        if parts is None:  # a leaf, or text before the first child
            run = node._text = node._text + chunk
        elif not parts:
            parts.append(chunk)
            run = chunk
        else:
            last = parts[-1]
            if last is _HANDED_ON:
                return  # text between children that were handed on: nobody reads it, so it is not kept
            if last.__class__ is str:
                run = parts[-1] = last + chunk
            else:
                parts.append(chunk)
                run = chunk
        if len(run) > MAX_TEXT:
            raise ConfigError(f"a text longer than {MAX_TEXT} characters", file=file,
                              line=parser.CurrentLineNumber)

    def other(tag: str) -> None:
        if stack:
            node = Node(tag, parser.CurrentLineNumber, data, parser.CurrentByteIndex)
            if each_child is not None and len(stack) == 1:
                stack[0]._add_child(None)
                each_child(node)
            else:
                stack[-1]._add_child(node)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.CommentHandler = lambda _text: other("#comment")
    parser.ProcessingInstructionHandler = lambda _target, _data: other("#pi")
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        message = expat.ErrorString(exc.code) or "not well-formed"
        raise ConfigError(f"not well-formed XML: {message}", file=file, line=exc.lineno or None) from None
    return found[0]


def escape_text(text: str) -> str:
    """Element text escaped for XML; ValueError for characters XML 1.0 cannot hold."""
    bad = re.search(_XML_CHAR, text)
    if bad is not None:
        raise ValueError(f"character U+{ord(bad.group()):04X} cannot be stored in XML")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
