"""OGC API Records at ``/records/v1``: the hub's catalogue as searchable records, apart from the
OGC API Features, so that a viewer that reads any OGC API landing page as a catalogue finds
records there and never feature collections."""
