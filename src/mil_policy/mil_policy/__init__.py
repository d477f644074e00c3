"""Meta-imitation learning (MAML for behaviour cloning): the learning core, the offline meta-trainer
and evaluation, and the policy node that adapts from one demonstration and drives the arm.
"""
