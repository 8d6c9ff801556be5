"""The meter-list reader's XML parse: leaves keep only their text, and a streamed parse hands on each child
of the root as it is complete (the list is never one tree) with the same result as the whole tree."""

from __future__ import annotations

import gc

from sonocli.config.device_handle import parse_meter_list
from sonocli.config.xmlsafe import Node, parse_document

DOC = (b'<?xml version="1.0" encoding="UTF-8"?>\n<root>\n  <version>0x06</version>\n  <!-- a note -->\n'
       b"  <meter>\n    <interface>M-Bus</interface>\n    <serial>0x1234<!-- c -->5678</serial>\n"
       b"    <value><description>Energy</description><difvif>0x04 0x06</difvif></value>\n  </meter>\n"
       b"  <?vendor x?>\n  <meter><interface>DLDE</interface><serial>0x00000001</serial></meter>\n</root>\n")


def _shape(node: Node) -> tuple[object, ...]:
    return (node.tag, node.text, "".join(node.itertext()), node.raw(), tuple(_shape(c) for c in node))


def test_leaf_and_mixed_text_as_in_document_order() -> None:
    root = parse_document(DOC, None)
    meter = next(c for c in root if c.tag == "meter")
    serial = next(c for c in meter if c.tag == "serial")
    assert serial.text == "0x1234" and "".join(serial.itertext()) == "0x12345678"  # around a comment
    assert [c.tag for c in serial] == ["#comment"]
    interface = next(c for c in meter if c.tag == "interface")
    assert interface.text == "M-Bus" and list(interface) == [] and interface.raw() == "<interface>M-Bus</interface>"
    assert root.text == "\n  "  # the text before the first child (the indent the writer keeps)


def test_streamed_children_equal_the_whole_tree_and_are_not_kept() -> None:
    whole = parse_document(DOC, None)
    handed: list[Node] = []
    root = parse_document(DOC, None, each_child=handed.append)
    assert [_shape(c) for c in handed] == [_shape(c) for c in whole]
    assert [c.tag for c in handed] == ["version", "#comment", "meter", "#pi", "meter"]
    assert list(root) == [] and root.text == whole.text  # nothing kept in the root, its indent still known


def test_streamed_meter_list_reads_as_before_and_keeps_no_tree() -> None:
    meters = parse_meter_list(DOC)
    assert [m.serial for m in meters.meters] == ["12345678", "00000001"]
    assert [tag for tag, _ in meters.extra] == ["#comment", "#pi"] and meters.style.indent == "  "
    gc.collect()
    assert not [o for o in gc.get_objects() if type(o) is Node and o.tag == "meter"]  # handed on, then dropped
