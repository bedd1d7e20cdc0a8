"""Asterisk Manager Interface: wire (pure), protocol (framing, ActionIDs), client (facade)."""
from ccengine.ami.client import AmiClient, AmiLoginFailed, AmiNotConnected, AmiSettings
from ccengine.ami.protocol import (AmiActionError, AmiConnectionLost, AmiError, AmiProtocol,
                                   AmiTimeout)
from ccengine.ami.wire import Action, AmiFrameTooLarge, BlockSplitter, Message, UnsafeAmiValue

__all__ = [
    "Action", "AmiActionError", "AmiClient", "AmiConnectionLost", "AmiError",
    "AmiFrameTooLarge", "AmiLoginFailed", "AmiNotConnected", "AmiProtocol", "AmiSettings",
    "AmiTimeout", "BlockSplitter", "Message", "UnsafeAmiValue",
]
