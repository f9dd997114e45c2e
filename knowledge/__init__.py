"""Knowledge side of kbot: readers, ingestion, the vector/keyword index, models and the SQL store."""
