#ifndef ICS_APPS_APP_H
#define ICS_APPS_APP_H
#endif
