"""The local target: worker processes behind local load balancers on this machine, no account.

The CLI calls deploy.py (deploy_local, local_plan, local_status, local_destroy) directly; this
package imports nothing, so the supervisor's process loads only what it runs.
"""
