"""The Streamlit front end of Spicy Lentil (`spicy-lentil app`)."""
