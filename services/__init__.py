"""The Ray Serve application: query embedding, Milvus fan-out search and the examiner web page."""
