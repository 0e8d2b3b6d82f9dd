"""song"""
