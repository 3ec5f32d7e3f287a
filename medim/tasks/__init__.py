"""Tasks: text->image, image->text, joint generation, and their mixture."""
