"""Federated training across sites with Flower (`iatros federate`): the sites and their
rows, a site's steps with the one Trainer, the Flower apps, and the run that ties them."""
