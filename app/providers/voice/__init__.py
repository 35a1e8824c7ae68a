"""Voice platforms: the Protocol, the Cloudonix adapter and the CXML builder."""
